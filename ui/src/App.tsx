import { lazy, Suspense, useCallback, useEffect, useRef, useState } from 'react';
import type { Job } from './api/types';
import { files, store, sync, toasts } from './app/services';
import { DeleteDialog, type DeleteTarget } from './components/DeleteDialog';
import { Header } from './components/Header';
import { HealthBar } from './components/HealthBar';
import { HelpDialog } from './components/HelpDialog';
import { JobFilters } from './components/JobFilters';
import { JobList } from './components/JobList';
import { jobTitle } from './components/JobRow';
import { SubmitForm } from './components/SubmitForm';
import { Toasts } from './components/Toasts';
import { TokenDialog } from './components/TokenDialog';
import { matchesFilter, type Filter, type Tab } from './lib/filters';
import { hashFor, viewFromHash, VIEWS, type View } from './lib/views';
import type { Transition } from './store/jobs';

const PANEL_ID = 'jobs-panel';

// The views beside the jobs are loaded when first opened: the first paint carries none.
const SubscriptionsView = lazy(() => import('./views/SubscriptionsView'));
const CookiesView = lazy(() => import('./views/CookiesView'));
const NotificationsView = lazy(() => import('./views/NotificationsView'));

function isEditable(el: Element | null): boolean {
  if (!el) return false;
  const tag = el.tagName;
  return tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT' || (el as HTMLElement).isContentEditable;
}

/** Toasts for jobs that end while the page watches. */
function announce({ job, from, to }: Transition): void {
  if (from === to) return;
  const name = jobTitle(job);
  if (to === 'completed') {
    const id = toasts.show({ kind: 'success', title: 'Download complete', message: name });
    void files.load(job.jobId).then((list) => {
      if (!list || !list.files.length) return;
      const links =
        list.zipUrl && list.files.length > 1
          ? [{ label: `Get the ${list.files.length} files (zip)`, href: list.zipUrl }]
          : [{ label: 'Get the file', href: list.files[0]!.url }];
      toasts.update(id, { links });
    });
  } else if (to === 'failed') {
    toasts.show({
      kind: 'error',
      title: `Download failed${job.errorCode ? ` (${job.errorCode})` : ''}`,
      message: job.errorMessage ? `${name}: ${job.errorMessage}` : name,
    });
  }
}

export function App({ initialUrl }: { initialUrl: string }) {
  const [filter, setFilter] = useState<Filter>(() => store.getList().filter);
  const [help, setHelp] = useState(false);
  const [toDelete, setToDelete] = useState<DeleteTarget | null>(null);
  const urlRef = useRef<HTMLTextAreaElement>(null);
  const [view, setView] = useState<View>(() => viewFromHash(location.hash) ?? 'downloads');

  // The view follows the fragment (#subscriptions, #cookies, #notifications), so Back works.
  useEffect(() => {
    const onHash = () => {
      // The skip link ("#main") goes to the jobs too.
      const next = location.hash === '#main' ? 'downloads' : viewFromHash(location.hash);
      if (next) setView(next);
    };
    window.addEventListener('hashchange', onHash);
    return () => window.removeEventListener('hashchange', onHash);
  }, []);

  const go = useCallback((next: View) => {
    if (location.hash !== hashFor(next)) location.hash = hashFor(next);
    setView(next);
  }, []);

  /** A job named elsewhere (a delivery): the jobs, scrolled to its row when it is there. */
  const openJob = useCallback(
    (jobId: string) => {
      go('downloads');
      void sync.refreshJob(jobId);
      requestAnimationFrame(() => document.getElementById(`job-${jobId}`)?.scrollIntoView({ block: 'center' }));
    },
    [go],
  );

  // Live updates, and the toasts they bring.
  useEffect(() => {
    const off = store.onTransition(announce);
    sync.start();
    return () => {
      off();
      sync.stop();
    };
  }, []);

  // The list follows the filter: the tab at once, the search after a pause in typing.
  useEffect(() => {
    const apply = () => {
      store.setFilter(filter);
      void sync.loadFirstPage();
    };
    const current = store.getList();
    if (current.loaded && current.filter.tab === filter.tab && current.filter.q === filter.q) return;
    if (current.filter.tab !== filter.tab || !current.loaded) return apply();
    const t = setTimeout(apply, 300);
    return () => clearTimeout(t);
  }, [filter]);

  // "/" goes to the URL field, "?" opens the help.
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.defaultPrevented || e.ctrlKey || e.metaKey || e.altKey) return;
      if (document.querySelector('dialog[open]') || isEditable(document.activeElement)) return;
      if (e.key === '/') {
        e.preventDefault();
        go('downloads');
        requestAnimationFrame(() => urlRef.current?.focus());
      } else if (e.key === '?') {
        e.preventDefault();
        setHelp(true);
      }
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, [go]);

  const onCreated = useCallback((jobs: Job[]) => {
    // New jobs should be seen: leave a tab or a search that would hide them.
    const current = store.getList().filter;
    if (jobs.some((j) => !matchesFilter(j, current))) setFilter({ tab: 'all', q: '' });
  }, []);

  const onDelete = useCallback((jobId: string, title: string) => setToDelete({ jobId, title }), []);

  return (
    <div className="min-h-dvh pb-24">
      <a
        href="#main"
        className="sr-only focus:not-sr-only focus:fixed focus:top-2 focus:left-2 focus:z-50 focus:rounded-lg focus:bg-white focus:px-3 focus:py-2 focus:shadow dark:focus:bg-zinc-900"
      >
        Skip to the jobs
      </a>
      <Header onHelp={() => setHelp(true)} />
      <HealthBar />
      <TokenDialog />
      <main className="mx-auto max-w-5xl px-4 pt-4 sm:px-6 sm:pt-6">
        <ViewNav view={view} onView={go} />
        {/* The jobs stay mounted under the other views: what was typed survives. */}
        <div hidden={view !== 'downloads'} className="mt-4 sm:mt-6">
          <SubmitForm initialUrl={initialUrl} urlRef={urlRef} onCreated={onCreated} />
          <section id="main" aria-labelledby="jobs-heading" className="mt-8" tabIndex={-1}>
            <h2 id="jobs-heading" className="sr-only">
              Jobs
            </h2>
            <JobFilters
              tab={filter.tab}
              q={filter.q}
              panelId={PANEL_ID}
              onTab={(tab: Tab) => setFilter((f) => ({ ...f, tab }))}
              onQ={(q) => setFilter((f) => ({ ...f, q }))}
            />
            <JobList panelId={PANEL_ID} onDelete={onDelete} />
          </section>
        </div>
        {view !== 'downloads' && (
          <Suspense fallback={<p className="mt-6 text-sm text-zinc-500">Loading…</p>}>
            {view === 'subscriptions' && <SubscriptionsView />}
            {view === 'cookies' && <CookiesView />}
            {view === 'notifications' && <NotificationsView onOpenJob={openJob} />}
          </Suspense>
        )}
      </main>
      <Toasts />
      {help && <HelpDialog onClose={() => setHelp(false)} />}
      {toDelete && <DeleteDialog target={toDelete} onClose={() => setToDelete(null)} />}
    </div>
  );
}

function ViewNav({ view, onView }: { view: View; onView: (v: View) => void }) {
  return (
    <nav aria-label="Sections">
      <ul className="grid grid-cols-2 gap-0.5 rounded-xl bg-zinc-200/70 p-1 sm:inline-grid sm:grid-cols-4 sm:gap-1 dark:bg-zinc-800/70">
        {VIEWS.map((v) => {
          const current = v.id === view;
          return (
            <li key={v.id} className="min-w-0">
              <a
                href={hashFor(v.id)}
                aria-current={current ? 'page' : undefined}
                onClick={(e) => {
                  e.preventDefault();
                  onView(v.id);
                }}
                className={`block truncate rounded-lg px-1 py-1.5 text-center text-sm font-medium transition-colors sm:px-3 ${
                  current
                    ? 'bg-white text-zinc-900 shadow-sm dark:bg-zinc-950 dark:text-white'
                    : 'text-zinc-600 hover:bg-zinc-200/60 hover:text-zinc-900 dark:text-zinc-400 dark:hover:bg-zinc-800 dark:hover:text-white'
                }`}
              >
                {v.label}
              </a>
            </li>
          );
        })}
      </ul>
    </nav>
  );
}
