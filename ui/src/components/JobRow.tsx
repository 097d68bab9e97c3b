import { memo, useState } from 'react';
import type { Job } from '../api/types';
import { useJob, useResource } from '../app/hooks';
import { runAction, subscriptions } from '../app/services';
import { subscriptionName } from '../lib/lists';
import { actionsFor, type ActionButton, type ButtonName } from '../lib/actions';
import { formatBytes, formatEta, formatPercent, formatSpeed, formatTime } from '../lib/format';
import { StatusPill, TypeBadge } from './Badges';
import { FilesPanel } from './FilesPanel';
import { IconPause, IconPlay, IconRetry, IconStop, IconTrash, IconX } from './icons';

const ICONS: Record<ButtonName, (p: { className?: string }) => React.ReactElement> = {
  Cancel: IconX,
  Pause: IconPause,
  Resume: IconPlay,
  Retry: IconRetry,
  Stop: IconStop,
  Delete: IconTrash,
};

export function jobTitle(job: Job): string {
  return job.filename || job.url;
}

interface RowProps {
  jobId: string;
  onDelete: (jobId: string, title: string) => void;
  /** Far down the list: the browser may skip drawing it until it is scrolled to. */
  deferred?: boolean;
}

/** One job; it re-renders when that job changes, not when another one does. */
export const JobRow = memo(function JobRow({ jobId, onDelete, deferred = false }: RowProps) {
  const job = useJob(jobId);
  if (!job) return null;
  return <JobCard job={job} onDelete={onDelete} deferred={deferred} />;
});

export function JobCard({ job, onDelete, deferred = false }: { job: Job } & Omit<RowProps, 'jobId'>) {
  const [busy, setBusy] = useState(false);
  const title = jobTitle(job);
  const showStage =
    (job.status === 'running' || job.status === 'paused') && job.stage && job.stage !== 'queued';

  const act = async (b: ActionButton) => {
    if (b.action === 'delete') {
      onDelete(job.jobId, title);
      return;
    }
    setBusy(true);
    try {
      await runAction(job.jobId, b.action);
    } finally {
      setBusy(false);
    }
  };

  return (
    <li
      className={`${deferred ? 'job-row-deferred' : ''} card flex flex-col p-4 sm:grid sm:grid-cols-[minmax(0,1fr)_auto] sm:gap-x-4`}
      aria-label={title}
      id={`job-${job.jobId}`}
    >
      <div className="min-w-0">
        <div className="flex flex-wrap items-center gap-2">
          <TypeBadge type={job.type} />
          <StatusPill status={job.status} />
          {showStage && <span className="text-xs text-zinc-500 dark:text-zinc-400">{job.stage}</span>}
        </div>
        <h3
          className="mt-1.5 line-clamp-2 text-sm font-semibold [overflow-wrap:anywhere] sm:text-[0.9375rem]"
          title={title}
        >
          {title}
        </h3>
        {job.filename && (
          <p className="truncate font-mono text-xs text-zinc-500 dark:text-zinc-400" title={job.url}>
            {job.url}
          </p>
        )}
        {job.subscriptionId && <FromSubscription id={job.subscriptionId} />}
      </div>

      {/* On a phone the buttons come last, under everything they act on. */}
      <div className="order-last mt-3 flex flex-wrap gap-2 sm:order-none sm:mt-0 sm:justify-end sm:self-start">
        {actionsFor(job.status, job.type).map((b) => {
          const Icon = ICONS[b.name];
          return (
            <button
              key={b.name}
              type="button"
              disabled={busy}
              onClick={() => void act(b)}
              className={`${b.name === 'Delete' ? 'btn-ghost text-red-600 hover:text-red-700 dark:text-red-400 dark:hover:text-red-300' : 'btn-secondary'} min-h-8 px-2.5 py-1 text-xs`}
            >
              <Icon className="size-3.5" />
              {b.name}
            </button>
          );
        })}
      </div>

      <div className="min-w-0 sm:col-span-2">
        {(job.status === 'running' || job.status === 'paused') && <ProgressBar job={job} />}

        <Stats job={job} />

        {job.status === 'failed' && (job.errorCode || job.errorMessage) && (
          <div className="mt-3 rounded-lg border border-red-200 bg-red-50 px-3 py-2 text-sm text-red-800 dark:border-red-500/30 dark:bg-red-500/10 dark:text-red-200">
            {job.errorCode && <code className="mr-2 font-mono text-xs font-semibold">{job.errorCode}</code>}
            {job.errorMessage && <span className="break-words">{job.errorMessage}</span>}
          </div>
        )}

        {job.status === 'completed' && <FilesPanel jobId={job.jobId} />}
      </div>
    </li>
  );
}

/** "Subscription: <name>" on the jobs a subscription's check created. */
function FromSubscription({ id }: { id: string }) {
  const list = useResource(subscriptions);
  const sub = list.items.find((s) => s.subscriptionId === id);
  const name = sub ? subscriptionName(sub) : list.availability === 'ready' ? 'deleted' : '…';
  return (
    <p className="mt-0.5 truncate text-xs text-zinc-500 dark:text-zinc-400">
      Subscription: <a href="#subscriptions" className="font-medium text-indigo-600 hover:underline dark:text-indigo-400">{name}</a>
    </p>
  );
}

function ProgressBar({ job }: { job: Job }) {
  const p = job.progress;
  const known = typeof p === 'number';
  const running = job.status === 'running';
  const indeterminate = !known && running;
  const value = known ? Math.min(100, Math.max(0, p)) : 0;
  const color =
    job.status === 'paused' ? 'bg-amber-500' : job.status === 'queued' ? 'bg-zinc-400' : 'bg-indigo-500';
  return (
    <div
      role="progressbar"
      aria-label="Progress"
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={indeterminate ? undefined : value}
      aria-valuetext={indeterminate ? 'progress unknown' : formatPercent(value)}
      className="mt-3 h-1.5 overflow-hidden rounded-full bg-zinc-200 dark:bg-zinc-800"
    >
      {indeterminate ? (
        <div className={`h-full w-full origin-left animate-indeterminate rounded-full ${color}`} />
      ) : (
        <div
          className={`h-full w-full origin-left rounded-full transition-transform duration-300 ease-out ${color}`}
          style={{ transform: `scaleX(${value / 100})` }}
        />
      )}
    </div>
  );
}

function Stats({ job }: { job: Job }) {
  const items: string[] = [];
  const running = job.status === 'running';
  if (running || job.status === 'paused') {
    const pct = formatPercent(job.progress);
    if (pct) items.push(pct);
    if (job.totalBytes) items.push(`of ${formatBytes(job.totalBytes)}`);
  }
  if (running) {
    const speed = formatSpeed(job.speed);
    if (speed) items.push(speed);
    const eta = formatEta(job.eta);
    if (eta) items.push(eta);
  }
  if (job.status === 'queued') items.push('waiting for a free slot');
  if (job.size !== null && job.status === 'completed') items.push(formatBytes(job.size));
  if (job.attempts > 0) items.push(job.attempts === 1 ? '1 attempt' : `${job.attempts} attempts`);
  const when = formatTime(job.createdAt);
  return (
    <div className="mt-2 flex flex-wrap items-center gap-x-3 gap-y-1 text-xs text-zinc-500 tabular-nums dark:text-zinc-400">
      {items.map((t, i) => (
        <span key={i}>{t}</span>
      ))}
      {when && (
        <time dateTime={job.createdAt} className="ml-auto">
          {when}
        </time>
      )}
    </div>
  );
}
