import { memo, useEffect, useState } from 'react';
import { api, ApiError } from '../api/client';
import type { CheckRecord, Subscription } from '../api/types';
import { useResource } from '../app/hooks';
import { subscriptions, toasts } from '../app/services';
import { TypeBadge } from '../components/Badges';
import { ConfirmDelete } from '../components/DeleteDialog';
import { formatInterval, formatRelative } from '../lib/interval';
import { removeSubscription, subscriptionName, upsertSubscription } from '../lib/lists';
import { ListStatus, Meta, toastError, useNow, ViewSection } from './parts';
import { SubscriptionForm } from './SubscriptionForm';

export default function SubscriptionsView() {
  const state = useResource(subscriptions);
  const [toDelete, setToDelete] = useState<Subscription | null>(null);
  const now = useNow();
  return (
    <ViewSection
      id="subscriptions"
      title="Subscriptions"
      intro="Channels, playlists, feeds and Twitter/X profiles checked on a schedule: each new entry becomes a job."
    >
      {state.availability !== 'unavailable' && <SubscriptionForm />}
      <ListStatus state={state} what="subscriptions" retry={() => void subscriptions.refresh()} />
      {state.availability === 'ready' && state.items.length === 0 && (
        <p className="text-sm text-zinc-500">No subscriptions yet.</p>
      )}
      <ul aria-label="Subscriptions" className="space-y-3">
        {state.items.map((s) => (
          <SubscriptionRow key={s.subscriptionId} sub={s} now={now} onDelete={setToDelete} />
        ))}
      </ul>
      {toDelete && (
        <ConfirmDelete
          title="Delete subscription?"
          name={subscriptionName(toDelete)}
          consequence="It is no longer checked. The jobs it created stay."
          onConfirm={() => deleteSubscription(toDelete.subscriptionId)}
          onClose={() => setToDelete(null)}
        />
      )}
    </ViewSection>
  );
}

async function deleteSubscription(id: string): Promise<void> {
  try {
    await api.deleteSubscription(id);
    subscriptions.update((l) => removeSubscription(l, id));
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) subscriptions.update((l) => removeSubscription(l, id));
    else toastError(e);
  }
}

function LastCheck({ sub, now }: { sub: Subscription; now: number }) {
  if (sub.checking) return <span className="font-medium text-indigo-600 dark:text-indigo-400">Checking…</span>;
  const c = sub.lastCheck;
  if (!c) return <span>Not checked yet</span>;
  const when = formatRelative(c.finishedAt ?? c.startedAt, now);
  if (c.status === 'failed') {
    return (
      <span className="text-red-600 dark:text-red-400">
        Last check failed {when}
        {c.errorCode && <code className="ml-1 font-mono">{c.errorCode}</code>}
        {c.errorMessage && `: ${c.errorMessage}`}
      </span>
    );
  }
  return (
    <span>
      Last check {when}: found {c.found ?? 0}, {c.created ?? 0} new
    </span>
  );
}

const SubscriptionRow = memo(function SubscriptionRow({
  sub,
  now,
  onDelete,
}: {
  sub: Subscription;
  now: number;
  onDelete: (s: Subscription) => void;
}) {
  const [busy, setBusy] = useState(false);
  /** The switch as clicked, until the server's answer (or its refusal) lands. */
  const [enabling, setEnabling] = useState<boolean | null>(null);
  const [history, setHistory] = useState(false);
  const name = subscriptionName(sub);

  const run = async (call: () => Promise<Subscription>) => {
    setBusy(true);
    try {
      const next = await call();
      subscriptions.update((l) => upsertSubscription(l, next));
    } catch (e) {
      if (e instanceof ApiError && e.status === 409) {
        // A check is queued or running already (maybe from another instance or client).
        subscriptions.update((l) => upsertSubscription(l, { ...sub, checking: true }));
        toasts.show({ kind: 'info', title: 'A check is running already', message: e.message });
      } else if (e instanceof ApiError && e.status === 404) {
        subscriptions.update((l) => removeSubscription(l, sub.subscriptionId));
        toasts.show({ kind: 'info', title: 'That subscription is gone', message: e.message });
      } else {
        toastError(e);
      }
    } finally {
      setBusy(false);
    }
  };

  return (
    <li aria-label={name} className="card flex flex-col gap-3 p-4 sm:flex-row sm:flex-wrap sm:items-start sm:justify-between">
      <div className="min-w-0">
        <div className="flex flex-wrap items-center gap-2">
          <TypeBadge type={sub.type} />
          <span className="text-xs text-zinc-500 dark:text-zinc-400">{formatInterval(sub.intervalS)}</span>
          {!sub.enabled && <span className="text-xs font-medium text-amber-700 dark:text-amber-300">disabled</span>}
        </div>
        <h3 className="mt-1.5 text-sm font-semibold [overflow-wrap:anywhere]">{name}</h3>
        {sub.title && <p className="truncate font-mono text-xs text-zinc-500 dark:text-zinc-400">{sub.url}</p>}
        <Meta>
          <LastCheck sub={sub} now={now} />
          <span>
            {sub.enabled && sub.nextCheckAt ? `Next check ${formatRelative(sub.nextCheckAt, now)}` : 'No scheduled check'}
          </span>
          <span>{sub.seen} seen</span>
        </Meta>
      </div>
      <div className="flex shrink-0 flex-wrap items-center gap-2">
        <label className="flex min-h-8 cursor-pointer items-center gap-2 text-xs font-medium">
          <input
            type="checkbox"
            role="switch"
            checked={enabling ?? sub.enabled}
            disabled={busy}
            onChange={(e) => {
              const enabled = e.target.checked;
              setEnabling(enabled);
              void run(() => api.updateSubscription(sub.subscriptionId, { enabled })).finally(() => setEnabling(null));
            }}
            className="size-4 accent-indigo-600"
          />
          Enabled
        </label>
        <button
          type="button"
          className="btn-secondary min-h-8 px-2.5 py-1 text-xs"
          disabled={busy || sub.checking}
          onClick={() => void run(() => api.checkSubscription(sub.subscriptionId))}
        >
          Check now
        </button>
        <button
          type="button"
          className="btn-ghost min-h-8 px-2.5 py-1 text-xs"
          aria-expanded={history}
          onClick={() => setHistory((h) => !h)}
        >
          Checks
        </button>
        <button
          type="button"
          className="btn-ghost min-h-8 px-2.5 py-1 text-xs text-red-600 hover:text-red-700 dark:text-red-400 dark:hover:text-red-300"
          onClick={() => onDelete(sub)}
        >
          Delete
        </button>
      </div>
      {history && <Checks sub={sub} now={now} />}
    </li>
  );
});

/** The latest checks (GET /subscriptions/{id}/checks), again whenever the last one changes. */
function Checks({ sub, now }: { sub: Subscription; now: number }) {
  const [items, setItems] = useState<readonly CheckRecord[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const last = sub.lastCheck?.checkId ?? null;
  useEffect(() => {
    let live = true;
    api
      .subscriptionChecks(sub.subscriptionId)
      .then((list) => live && (setItems(list.items), setError(null)))
      .catch((e: unknown) => live && setError(e instanceof Error ? e.message : String(e)));
    return () => {
      live = false;
    };
  }, [sub.subscriptionId, last, sub.checking]);
  return (
    <div className="w-full sm:basis-full">
      {error && <p role="alert" className="text-xs text-red-600 dark:text-red-400">{error}</p>}
      {items && items.length === 0 && <p className="text-xs text-zinc-500">No checks yet.</p>}
      <ol aria-label="Checks" className="space-y-1 text-xs text-zinc-600 tabular-nums dark:text-zinc-400">
        {(items ?? []).map((c) => (
          <li key={c.checkId} className="flex flex-wrap gap-x-2">
            <span className="font-medium">{c.status}</span>
            <span>{formatRelative(c.finishedAt ?? c.startedAt, now)}</span>
            {c.status === 'ok' && (
              <span>
                found {c.found ?? 0}, {c.created ?? 0} new
              </span>
            )}
            {c.errorCode && <code className="font-mono">{c.errorCode}</code>}
            {c.errorMessage && <span className="break-words">{c.errorMessage}</span>}
          </li>
        ))}
      </ol>
    </div>
  );
}
