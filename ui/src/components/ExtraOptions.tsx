// The options every type shares with the lists beside the jobs: the stored cookie file
// (yt-dlp and Twitter/X) and the notification targets. Each is hidden when the server has
// no such list (an older server) or it is empty.
import type { Target } from '../api/types';
import { useResource } from '../app/hooks';
import { cookies, targets } from '../app/services';
import { defaultTargets, jobTargets, notifyOption, toggle } from '../lib/notify';

/** The stored cookie names and the job targets, once loaded ([] when unavailable). */
export function useExtras(): { cookieNames: string[]; jobTargets: Target[] } {
  const c = useResource(cookies);
  const t = useResource(targets);
  return {
    cookieNames: c.availability === 'ready' ? c.items.map((f) => f.name) : [],
    jobTargets: t.availability === 'ready' ? jobTargets(t.items) : [],
  };
}

export function CookiesField({
  id,
  names,
  value,
  onChange,
}: {
  id: string;
  names: readonly string[];
  value: string;
  onChange: (value: string) => void;
}) {
  // A name chosen before its file was deleted stays visible until changed.
  const shown = value && !names.includes(value) ? [...names, value] : names;
  return (
    <div>
      <label htmlFor={`${id}-cookies`} className="label">
        Cookies
      </label>
      <select id={`${id}-cookies`} className="field" value={value} onChange={(e) => onChange(e.target.value)}>
        <option value="">None</option>
        {shown.map((n) => (
          <option key={n} value={n}>
            {n}
          </option>
        ))}
      </select>
    </div>
  );
}

/** Checkboxes named after the targets; the defaults checked until the person changes them. */
export function NotifyField({
  id,
  targets: list,
  value,
  onChange,
}: {
  id: string;
  targets: readonly Target[];
  /** null: the defaults. */
  value: string[] | null;
  onChange: (value: string[] | null) => void;
}) {
  const chosen = new Set(value ?? defaultTargets(list));
  return (
    <fieldset className="min-w-0">
      <legend className="label">Notify</legend>
      <div className="flex flex-wrap gap-x-5 gap-y-1">
        {list.map((t) => (
          <label key={t.name} htmlFor={`${id}-notify-${t.name}`} className="flex min-h-9 cursor-pointer items-center gap-2 text-sm">
            <input
              id={`${id}-notify-${t.name}`}
              type="checkbox"
              aria-label={t.name}
              aria-describedby={t.default ? `${id}-notify-${t.name}-default` : undefined}
              checked={chosen.has(t.name)}
              onChange={(e) => onChange(notifyOption(toggle(chosen, t.name, e.target.checked), list) ?? null)}
              className="size-4 rounded border-zinc-300 accent-indigo-600 dark:border-zinc-600"
            />
            {t.name}
            {t.default && (
              <span id={`${id}-notify-${t.name}-default`} className="text-xs text-zinc-500 dark:text-zinc-400">
                (default)
              </span>
            )}
          </label>
        ))}
      </div>
    </fieldset>
  );
}
