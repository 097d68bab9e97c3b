// Merging REST answers and socket events into the lists of subscriptions, cookie files
// and notification deliveries. Pure: each returns the same array when nothing changed.
import type { CookieFile, Delivery, Subscription } from '../api/types';

const newestFirst = (a: { createdAt: string }, b: { createdAt: string }) =>
  Date.parse(b.createdAt) - Date.parse(a.createdAt);

/** A subscription as an event or an answer brings it; an older copy never wins over a newer one. */
export function upsertSubscription(list: readonly Subscription[], sub: Subscription): readonly Subscription[] {
  const i = list.findIndex((s) => s.subscriptionId === sub.subscriptionId);
  if (i >= 0) {
    const old = list[i]!;
    if (Date.parse(old.updatedAt) > Date.parse(sub.updatedAt)) return list;
    if (JSON.stringify(old) === JSON.stringify(sub)) return list;
    const next = [...list];
    next[i] = sub;
    return next;
  }
  return [...list, sub].sort(newestFirst);
}

export function removeSubscription(list: readonly Subscription[], id: string): readonly Subscription[] {
  return list.some((s) => s.subscriptionId === id) ? list.filter((s) => s.subscriptionId !== id) : list;
}

/** Cookie files by name, as the server lists them. */
export function sortCookies(items: readonly CookieFile[]): CookieFile[] {
  return [...items].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

export function upsertCookie(list: readonly CookieFile[], file: CookieFile): readonly CookieFile[] {
  return sortCookies([...list.filter((c) => c.name !== file.name), file]);
}

export function removeCookie(list: readonly CookieFile[], name: string): readonly CookieFile[] {
  return list.some((c) => c.name === name) ? list.filter((c) => c.name !== name) : list;
}

const RANK: Record<Delivery['status'], number> = { pending: 0, delivered: 1, failed: 1 };

/** Newer news of a delivery: more attempts, or an end after pending. */
function newer(a: Delivery, b: Delivery): boolean {
  if (b.attempts !== a.attempts) return b.attempts > a.attempts;
  return RANK[b.status] >= RANK[a.status];
}

/** A delivery into the newest-first list, kept to `cap` entries. */
export function upsertDelivery(list: readonly Delivery[], d: Delivery, cap = 200): readonly Delivery[] {
  const i = list.findIndex((x) => x.deliveryId === d.deliveryId);
  if (i >= 0) {
    if (!newer(list[i]!, d) || JSON.stringify(list[i]) === JSON.stringify(d)) return list;
    const next = [...list];
    next[i] = d;
    return next;
  }
  return [...list, d].sort(newestFirst).slice(0, cap);
}

/** A page of deliveries merged into what the page has (a refresh keeps what it knows newer). */
export function mergeDeliveries(list: readonly Delivery[], page: readonly Delivery[], cap = 200): readonly Delivery[] {
  let next = list;
  for (const d of page) next = upsertDelivery(next, d, cap);
  return next;
}

/** How a subscription is named on the page: its title once known, else its URL. */
export function subscriptionName(sub: Pick<Subscription, 'title' | 'url'>): string {
  return sub.title || sub.url;
}
