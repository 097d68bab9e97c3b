import { useState } from 'react';
import { api } from '../api/client';
import type { Delivery, DeliveryStatus, Target } from '../api/types';
import { useJob, useResource } from '../app/hooks';
import { deliveries, targets } from '../app/services';
import { jobTitle } from '../components/JobRow';
import { formatRelative } from '../lib/interval';
import { upsertDelivery } from '../lib/lists';
import { ListStatus, Meta, toastError, useNow, ViewSection } from './parts';

const STATUS_STYLE: Record<DeliveryStatus, string> = {
  pending: 'bg-zinc-100 text-zinc-700 dark:bg-zinc-800 dark:text-zinc-300',
  delivered: 'bg-emerald-50 text-emerald-700 dark:bg-emerald-500/15 dark:text-emerald-300',
  failed: 'bg-red-50 text-red-700 dark:bg-red-500/15 dark:text-red-300',
};

export default function NotificationsView({ onOpenJob }: { onOpenJob: (jobId: string) => void }) {
  const t = useResource(targets);
  const d = useResource(deliveries);
  const now = useNow();
  return (
    <ViewSection
      id="notifications"
      title="Notifications"
      intro="The webhook and Apprise targets of the configuration (notify), and what was sent to them."
    >
      <div>
        <h3 className="mb-2 text-sm font-semibold">Targets</h3>
        <ListStatus state={t} what="notifications" retry={() => void targets.refresh()} />
        {t.availability === 'ready' && t.items.length === 0 && (
          <p className="text-sm text-zinc-500">No targets are configured (the configuration's notify list is empty).</p>
        )}
        <ul aria-label="Targets" className="grid grid-cols-1 gap-3 sm:grid-cols-2">
          {t.items.map((target) => (
            <TargetRow key={target.name} target={target} />
          ))}
        </ul>
      </div>
      {d.availability !== 'unavailable' && (
        <div>
          <h3 className="mb-2 text-sm font-semibold">Recent deliveries</h3>
          <ListStatus state={d} what="deliveries" retry={() => void deliveries.refresh()} />
          {d.availability === 'ready' && d.items.length === 0 && (
            <p className="text-sm text-zinc-500">Nothing was sent yet.</p>
          )}
          <ul aria-label="Deliveries" className="space-y-2">
            {d.items.map((x) => (
              <DeliveryRow key={x.deliveryId} delivery={x} now={now} onOpenJob={onOpenJob} />
            ))}
          </ul>
        </div>
      )}
    </ViewSection>
  );
}

function TargetRow({ target }: { target: Target }) {
  const [busy, setBusy] = useState(false);
  const send = async () => {
    setBusy(true);
    try {
      const delivery = await api.testTarget(target.name);
      deliveries.update((l) => upsertDelivery(l, delivery));
    } catch (e) {
      toastError(e, 'The test was not sent');
    } finally {
      setBusy(false);
    }
  };
  return (
    <li aria-label={target.name} className="card flex items-start justify-between gap-3 p-4">
      <div className="min-w-0">
        <h4 className="text-sm font-semibold [overflow-wrap:anywhere]">
          {target.name}
          {target.default && (
            <span className="ml-2 rounded-md bg-indigo-50 px-1.5 py-0.5 text-xs font-medium text-indigo-700 dark:bg-indigo-500/15 dark:text-indigo-300">
              default
            </span>
          )}
        </h4>
        <Meta>
          <span>{target.kind}</span>
          <span>{target.events.join(', ')}</span>
        </Meta>
      </div>
      <button type="button" className="btn-secondary min-h-8 shrink-0 px-2.5 py-1 text-xs" disabled={busy} onClick={() => void send()}>
        Send test
      </button>
    </li>
  );
}

function JobLink({ jobId, onOpenJob }: { jobId: string; onOpenJob: (jobId: string) => void }) {
  const job = useJob(jobId);
  return (
    <a
      href="#downloads"
      className="font-medium text-indigo-600 hover:underline dark:text-indigo-400"
      onClick={(e) => {
        e.preventDefault();
        onOpenJob(jobId);
      }}
    >
      {job ? jobTitle(job) : `job ${jobId.slice(0, 8)}`}
    </a>
  );
}

function DeliveryRow({ delivery: x, now, onOpenJob }: { delivery: Delivery; now: number; onOpenJob: (jobId: string) => void }) {
  const when = x.deliveredAt ?? x.createdAt;
  return (
    <li aria-label={`${x.event} to ${x.target}`} className="card p-3 text-sm">
      <div className="flex flex-wrap items-center gap-x-2 gap-y-1">
        <span className={`rounded-full px-2 py-0.5 text-xs font-medium ${STATUS_STYLE[x.status] ?? ''}`}>{x.status}</span>
        <span className="font-medium">{x.event}</span>
        <span className="text-zinc-500">to</span>
        <span className="font-medium">{x.target}</span>
        {x.jobId && <JobLink jobId={x.jobId} onOpenJob={onOpenJob} />}
      </div>
      <Meta>
        <span>{x.attempts === 1 ? '1 attempt' : `${x.attempts} attempts`}</span>
        <time dateTime={when}>{formatRelative(when, now)}</time>
        {x.status === 'pending' && x.nextAttemptAt && <span>next try {formatRelative(x.nextAttemptAt, now)}</span>}
      </Meta>
      {x.lastError && <p className="mt-1.5 text-xs break-words text-red-600 dark:text-red-400">{x.lastError}</p>}
    </li>
  );
}
