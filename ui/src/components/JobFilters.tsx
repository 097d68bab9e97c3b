import { useRef, type KeyboardEvent } from 'react';
import { TABS, type Tab } from '../lib/filters';
import { IconSearch } from './icons';

interface Props {
  tab: Tab;
  q: string;
  onTab: (tab: Tab) => void;
  onQ: (q: string) => void;
  panelId: string;
}

export function JobFilters({ tab, q, onTab, onQ, panelId }: Props) {
  const tabs = useRef<(HTMLButtonElement | null)[]>([]);

  // Arrow keys move between the tabs (one tab stop for the whole group).
  const onKeyDown = (e: KeyboardEvent<HTMLDivElement>) => {
    const i = TABS.findIndex((t) => t.id === tab);
    let next = -1;
    if (e.key === 'ArrowRight') next = (i + 1) % TABS.length;
    else if (e.key === 'ArrowLeft') next = (i - 1 + TABS.length) % TABS.length;
    else if (e.key === 'Home') next = 0;
    else if (e.key === 'End') next = TABS.length - 1;
    if (next < 0) return;
    e.preventDefault();
    onTab(TABS[next]!.id);
    tabs.current[next]?.focus();
  };

  return (
    <div className="flex flex-col gap-3 sm:flex-row sm:items-center sm:justify-between">
      <div
        role="tablist"
        aria-label="Job status"
        onKeyDown={onKeyDown}
        className="grid grid-cols-5 gap-0.5 rounded-xl bg-zinc-200/70 p-1 sm:flex sm:gap-1 sm:bg-transparent sm:p-0 dark:bg-zinc-800/70 sm:dark:bg-transparent"
      >
        {TABS.map((t, i) => {
          const selected = t.id === tab;
          return (
            <button
              key={t.id}
              ref={(el) => {
                tabs.current[i] = el;
              }}
              id={`tab-${t.id}`}
              type="button"
              role="tab"
              aria-selected={selected}
              aria-controls={panelId}
              tabIndex={selected ? 0 : -1}
              onClick={() => onTab(t.id)}
              className={`min-w-0 rounded-lg px-1 py-1.5 text-xs font-medium whitespace-nowrap transition-colors sm:px-3 sm:text-sm ${
                selected
                  ? 'bg-white text-zinc-900 shadow-sm sm:bg-zinc-900 sm:text-white dark:bg-zinc-950 dark:text-white sm:dark:bg-white sm:dark:text-zinc-900'
                  : 'text-zinc-600 hover:bg-zinc-200/60 hover:text-zinc-900 dark:text-zinc-400 dark:hover:bg-zinc-800 dark:hover:text-white'
              }`}
            >
              {t.label}
            </button>
          );
        })}
      </div>
      <div className="relative sm:w-72">
        <label htmlFor="job-search" className="sr-only">
          Search
        </label>
        <IconSearch className="pointer-events-none absolute top-1/2 left-3 size-4 -translate-y-1/2 text-zinc-400" />
        <input
          id="job-search"
          type="search"
          value={q}
          maxLength={200}
          onChange={(e) => onQ(e.target.value)}
          placeholder="Search URL or file name"
          autoComplete="off"
          spellCheck={false}
          className="field pl-9"
        />
      </div>
    </div>
  );
}
