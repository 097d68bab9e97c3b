import { useEffect, useRef } from 'react';
import { useList } from '../app/hooks';
import { sync } from '../app/services';
import { normalizedQ, tabInfo } from '../lib/filters';
import { JobRow } from './JobRow';

// Rows past the first page are drawn only near the screen (content-visibility): 1,000 rows
// cost little, and the first page still prints and screenshots whole.
const DEFER_AFTER = 50;

interface Props {
  panelId: string;
  onDelete: (jobId: string, title: string) => void;
}

export function JobList({ panelId, onDelete }: Props) {
  const list = useList();
  const sentinel = useRef<HTMLDivElement>(null);
  const hasMore = list.loaded && list.nextCursor !== null;

  // Infinite scroll: the next page loads when the end of the list comes near.
  useEffect(() => {
    const el = sentinel.current;
    if (!el || !hasMore || typeof IntersectionObserver === 'undefined') return;
    const obs = new IntersectionObserver(
      (entries) => {
        if (entries.some((e) => e.isIntersecting)) void sync.loadMore();
      },
      { rootMargin: '600px 0px' },
    );
    obs.observe(el);
    return () => obs.disconnect();
  }, [hasMore, list.ids.length]);

  const tab = tabInfo(list.filter.tab);
  const q = normalizedQ(list.filter.q);

  return (
    <div id={panelId} role="tabpanel" aria-labelledby={`tab-${list.filter.tab}`} className="mt-4">
      <ul aria-label="Jobs" aria-busy={!list.loaded || list.loadingMore} className="space-y-3">
        {list.ids.map((id, i) => (
          <JobRow key={id} jobId={id} onDelete={onDelete} deferred={i >= DEFER_AFTER} />
        ))}
      </ul>

      {!list.loaded && !list.error && <Skeleton />}

      {list.loaded && list.ids.length === 0 && (
        <div className="card flex flex-col items-center px-6 py-12 text-center">
          <p className="text-sm font-medium">
            {q
              ? `No jobs match “${q}”${tab.statuses ? ` in ${tab.label}` : ''}.`
              : tab.statuses
                ? `No ${tab.label.toLowerCase()} jobs.`
                : 'No jobs yet.'}
          </p>
          <p className="mt-1 text-sm text-zinc-500">
            {q || tab.statuses ? 'Try another tab or search.' : 'Paste a link above and press Download.'}
          </p>
        </div>
      )}

      {list.error && (
        <p role="alert" className="mt-3 text-sm text-red-600 dark:text-red-400">
          {list.error}{' '}
          <button
            type="button"
            className="font-medium text-indigo-600 underline dark:text-indigo-400"
            onClick={() => void (list.loaded ? sync.loadMore() : sync.loadFirstPage())}
          >
            Load again
          </button>
        </p>
      )}

      <div ref={sentinel} aria-hidden="true" className="h-px" />
      {hasMore && (
        <div className="mt-4 flex justify-center">
          <button
            type="button"
            className="btn-secondary"
            disabled={list.loadingMore}
            onClick={() => void sync.loadMore()}
          >
            {list.loadingMore ? 'Loading…' : 'Load more'}
          </button>
        </div>
      )}
    </div>
  );
}

function Skeleton() {
  return (
    <div aria-hidden="true" className="space-y-3">
      {[0, 1, 2].map((i) => (
        <div key={i} className="card animate-pulse p-4">
          <div className="h-3 w-24 rounded bg-zinc-200 dark:bg-zinc-800" />
          <div className="mt-3 h-3.5 w-2/3 rounded bg-zinc-200 dark:bg-zinc-800" />
          <div className="mt-4 h-1.5 w-full rounded bg-zinc-100 dark:bg-zinc-800/60" />
        </div>
      ))}
    </div>
  );
}
