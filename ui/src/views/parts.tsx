// Pieces the lazily loaded views share: their frame, "unavailable", errors, the clock.
import { useEffect, useState, type ReactNode } from 'react';
import { ApiError } from '../api/client';
import { toasts } from '../app/services';
import type { ResourceState } from '../store/resource';
import { IconAlert } from '../components/icons';

export function ViewSection({ id, title, intro, children }: { id: string; title: string; intro: string; children: ReactNode }) {
  return (
    <section aria-labelledby={`${id}-heading`} className="mt-6 space-y-6">
      <div>
        <h2 id={`${id}-heading`} className="text-lg font-semibold tracking-tight">
          {title}
        </h2>
        <p className="mt-1 text-sm text-zinc-600 dark:text-zinc-400">{intro}</p>
      </div>
      {children}
    </section>
  );
}

/** What a list shows before its items: loading, unavailable (404: an older server), an error. */
export function ListStatus<T>({ state, what, retry }: { state: ResourceState<T>; what: string; retry: () => void }) {
  if (state.availability === 'loading' || state.availability === 'idle') {
    return <p className="text-sm text-zinc-500">Loading {what}…</p>;
  }
  if (state.availability === 'unavailable') {
    return (
      <div role="status" className="card px-4 py-6 text-center text-sm">
        <p className="font-medium">{what[0]!.toUpperCase() + what.slice(1)} are unavailable on this server.</p>
        <p className="mt-1 text-zinc-500">It answered 404: it is an older mediad without them.</p>
      </div>
    );
  }
  if (!state.error) return null;
  return (
    <p role="alert" className="text-sm text-red-600 dark:text-red-400">
      {state.error}{' '}
      <button type="button" className="font-medium text-indigo-600 underline dark:text-indigo-400" onClick={retry}>
        Load again
      </button>
    </p>
  );
}

export function FormError({ id, text }: { id: string; text: string | null }) {
  if (!text) return null;
  return (
    <div id={id} role="alert" className="mt-2 flex gap-2 text-sm text-red-600 dark:text-red-400">
      <IconAlert className="mt-0.5 size-4 shrink-0" />
      <p className="min-w-0 break-words whitespace-pre-line">{text}</p>
    </div>
  );
}

/** A refusal as a toast (401: the token dialog is up already). */
export function toastError(e: unknown, title = 'The server said no'): void {
  if (e instanceof ApiError && e.status === 401) return;
  toasts.show({ kind: 'error', title, message: e instanceof Error ? e.message : String(e) });
}

/** Date.now(), again every `ms` (for "in 5 min" texts). */
export function useNow(ms = 30_000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(t);
  }, [ms]);
  return now;
}

export function Meta({ children }: { children: ReactNode }) {
  return (
    <div className="mt-1.5 flex flex-wrap items-center gap-x-3 gap-y-1 text-xs text-zinc-500 tabular-nums dark:text-zinc-400">
      {children}
    </div>
  );
}
