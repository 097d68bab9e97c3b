import { useEffect, useState } from 'react';
import { useConnState } from '../app/hooks';
import { stateText } from '../lib/connection';
import { applyTheme, currentTheme, saveTheme, storedTheme, type Theme } from '../lib/theme';
import { IconHelp, IconMoon, IconSun } from './icons';

export function Header({ onHelp }: { onHelp: () => void }) {
  return (
    <header className="sticky top-0 z-30 border-b border-zinc-200/80 bg-white/85 backdrop-blur dark:border-zinc-800/80 dark:bg-zinc-950/80">
      <div className="mx-auto flex min-h-14 max-w-5xl flex-wrap items-center gap-x-3 gap-y-2 px-4 py-2.5 sm:px-6">
        <a href="/" className="flex items-center gap-2 rounded-lg font-semibold tracking-tight">
          <img src="/icon.svg" alt="" width={28} height={28} className="size-7" />
          <span className="text-base">mediad</span>
        </a>
        <ConnectionBadge />
        <div className="ml-auto flex items-center gap-1.5 sm:gap-2">
          <ThemeButton />
          <button type="button" className="btn-ghost px-2 sm:px-3" aria-label="Help" onClick={onHelp}>
            <IconHelp className="size-5" />
            <span aria-hidden="true" className="hidden sm:inline">
              Help
            </span>
          </button>
        </div>
      </div>
    </header>
  );
}

function ConnectionBadge() {
  const state = useConnState();
  const text = stateText(state);
  const dot =
    state === 'connected'
      ? 'bg-emerald-500'
      : state === 'polling'
        ? 'bg-amber-500 animate-pulse'
        : 'bg-zinc-400 animate-pulse';
  const tone =
    state === 'polling'
      ? 'bg-amber-50 text-amber-900 ring-amber-600/20 dark:bg-amber-500/10 dark:text-amber-200 dark:ring-amber-400/30'
      : 'bg-zinc-50 text-zinc-700 ring-zinc-200 dark:bg-zinc-900 dark:text-zinc-300 dark:ring-zinc-700';
  // Connected, it is a small pill beside the name; otherwise it takes a line of its own on
  // a phone, so the whole sentence shows.
  const place =
    state === 'connected' ? '' : 'order-last basis-full justify-center sm:order-none sm:basis-auto';
  return (
    <div
      role="status"
      aria-label={text}
      className={`inline-flex items-center gap-1.5 rounded-full px-2.5 py-1 text-xs font-medium ring-1 ring-inset ${place} ${tone}`}
    >
      <span aria-hidden="true" className={`size-2 shrink-0 rounded-full ${dot}`} />
      <span>{text}</span>
    </div>
  );
}

function ThemeButton() {
  const [theme, setTheme] = useState<Theme>(currentTheme);

  // Follow the system while the person has not chosen.
  useEffect(() => {
    if (typeof matchMedia !== 'function') return;
    const mq = matchMedia('(prefers-color-scheme: dark)');
    const onChange = () => {
      if (storedTheme()) return;
      const next: Theme = mq.matches ? 'dark' : 'light';
      applyTheme(next);
      setTheme(next);
    };
    mq.addEventListener('change', onChange);
    return () => mq.removeEventListener('change', onChange);
  }, []);

  const dark = theme === 'dark';
  return (
    <button
      type="button"
      className="btn-ghost px-2"
      aria-label="Theme"
      aria-pressed={dark}
      title={dark ? 'Dark theme (switch to light)' : 'Light theme (switch to dark)'}
      onClick={() => {
        const next: Theme = dark ? 'light' : 'dark';
        saveTheme(next);
        setTheme(next);
      }}
    >
      {dark ? <IconMoon className="size-5" /> : <IconSun className="size-5" />}
    </button>
  );
}
