// The page's single instances, wired together.
import { api, ApiError, getToken, setToken, setUnauthorizedHook } from '../api/client';
import type { Action, CookieFile, CookieFileList, Delivery, Job, Subscription, Target } from '../api/types';
import { removeSubscription, sortCookies, upsertDelivery, upsertSubscription } from '../lib/lists';
import { Sync } from '../live/sync';
import { FilesStore } from '../store/files';
import { JobStore } from '../store/jobs';
import { ResourceStore } from '../store/resource';
import { ToastStore } from '../store/toasts';
import { AuthStore } from './auth';

export const store = new JobStore();
export const files = new FilesStore();
export const toasts = new ToastStore();
export const auth = new AuthStore();

export const sync = new Sync({
  store,
  listPage: (filter, cursor) => api.list(filter, cursor),
  getJob: api.get,
  getToken,
  onAuthRequired: (message) => auth.require(getToken() ? 'wrong' : 'missing', message),
  authBlocked: () => auth.waiting(),
});

// The lists beside the jobs: each loaded when first wanted, kept current by the socket.
export const subscriptions = new ResourceStore<Subscription>(async () => (await api.subscriptions()).items);
export const cookies = new ResourceStore<CookieFile>(async () => sortCookies((await api.cookies()).items));
export const targets = new ResourceStore<Target>(async () => (await api.targets()).items);
export const deliveries = new ResourceStore<Delivery>(async () => (await api.deliveries()).items);

sync.on('subscription-update', (data) => {
  const sub = data as Subscription;
  if (sub && typeof sub.subscriptionId === 'string') subscriptions.update((l) => upsertSubscription(l, sub));
});
sync.on('subscription-deleted', (data) => {
  const id = (data as { subscriptionId?: unknown } | null)?.subscriptionId;
  if (typeof id === 'string') subscriptions.update((l) => removeSubscription(l, id));
});
sync.on('cookies-update', (data) => {
  const list = data as CookieFileList | null;
  if (list && Array.isArray(list.items)) cookies.update(() => sortCookies(list.items));
});
sync.on('notification-update', (data) => {
  const d = data as Delivery;
  if (d && typeof d.deliveryId === 'string') deliveries.update((l) => upsertDelivery(l, d));
});
sync.onLiveAgain(() => {
  for (const r of [subscriptions, cookies, targets, deliveries]) r.refreshIfLoaded();
});

setUnauthorizedHook((error) => auth.require(getToken() ? 'wrong' : 'missing', error.message));

/** A token was accepted: keep it and start over with it. */
export function acceptToken(token: string): void {
  setToken(token);
  auth.close();
  sync.reconnect();
  void sync.loadFirstPage();
  for (const r of [subscriptions, cookies, targets, deliveries]) r.refreshIfLoaded();
}

export function forgetToken(): void {
  setToken(null);
  sync.reconnect();
  toasts.show({ kind: 'info', title: 'Token forgotten', message: 'This browser keeps no API token now.' });
}

function refused(jobId: string, e: unknown): void {
  if (!(e instanceof ApiError)) {
    toasts.show({ kind: 'error', title: 'Something went wrong', message: String(e) });
    return;
  }
  if (e.status === 401) return; // the token dialog is up
  if (e.status === 409) {
    if (e.currentStatus) store.setStatus(jobId, e.currentStatus);
    void sync.refreshJob(jobId);
    toasts.show({
      kind: 'info',
      title: e.currentStatus ? `The job is ${e.currentStatus} now` : 'Not possible now',
      message: e.message,
    });
    return;
  }
  if (e.status === 404) {
    store.remove(jobId);
    files.forget(jobId);
    toasts.show({ kind: 'info', title: 'That job is gone', message: e.message });
    return;
  }
  toasts.show({ kind: 'error', title: 'The server said no', message: e.message });
}

/** POST /downloads/{id}/{action}: the row shows the answer (or the status a 409 names). */
export async function runAction(jobId: string, action: Action): Promise<void> {
  const at = store.now();
  try {
    const job: Job = await api.act(jobId, action);
    store.upsert(job, at);
  } catch (e) {
    refused(jobId, e);
  }
}

/** DELETE /downloads/{id}: 204 takes the row away. */
export async function deleteJob(jobId: string): Promise<void> {
  try {
    await api.remove(jobId);
    store.remove(jobId);
    files.forget(jobId);
  } catch (e) {
    refused(jobId, e);
  }
}
