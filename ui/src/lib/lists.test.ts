import { describe, expect, it } from 'vitest';
import { delivery, subscription } from '../test/fixtures';
import {
  mergeDeliveries,
  removeCookie,
  removeSubscription,
  sortCookies,
  subscriptionName,
  upsertCookie,
  upsertDelivery,
  upsertSubscription,
} from './lists';

describe('subscriptions list', () => {
  it('puts a new one in by creation, newest first', () => {
    const old = subscription({ createdAt: '2025-01-01T10:00:00Z' });
    const mid = subscription({ createdAt: '2025-01-01T11:00:00Z' });
    const list = upsertSubscription(upsertSubscription([], old), subscription({ createdAt: '2025-01-01T12:00:00Z' }));
    const next = upsertSubscription(list, mid);
    expect(next.map((s) => s.createdAt)).toEqual(['2025-01-01T12:00:00Z', '2025-01-01T11:00:00Z', '2025-01-01T10:00:00Z']);
  });

  it('replaces one with its newer state, and an older copy never wins', () => {
    const s = subscription({ updatedAt: '2025-01-01T12:00:00Z' });
    const checked = { ...s, checking: true, updatedAt: '2025-01-01T12:00:05Z' };
    const list = upsertSubscription([s], checked);
    expect(list[0]!.checking).toBe(true);
    expect(upsertSubscription(list, s)).toBe(list);
    expect(upsertSubscription(list, { ...checked })).toBe(list); // the same: no change
  });

  it('takes one out (the same list when it is not there)', () => {
    const a = subscription();
    const list = [a];
    expect(removeSubscription(list, a.subscriptionId)).toEqual([]);
    expect(removeSubscription(list, 'nope')).toBe(list);
  });

  it('names one by its title, else its URL', () => {
    expect(subscriptionName({ title: 'Channel', url: 'https://x' })).toBe('Channel');
    expect(subscriptionName({ title: null, url: 'https://x' })).toBe('https://x');
  });
});

describe('cookie files list', () => {
  const f = (name: string) => ({ name, size: 10, entries: 1, updatedAt: '2025-01-01T12:00:00Z' });
  it('keeps them by name, one per name', () => {
    const list = sortCookies([f('b'), f('a')]);
    expect(list.map((c) => c.name)).toEqual(['a', 'b']);
    const replaced = upsertCookie(list, { ...f('a'), entries: 5 });
    expect(replaced.map((c) => [c.name, c.entries])).toEqual([['a', 5], ['b', 1]]);
    expect(removeCookie(replaced, 'a').map((c) => c.name)).toEqual(['b']);
    expect(removeCookie(replaced, 'zz')).toBe(replaced);
  });
});

describe('deliveries list', () => {
  it('adds new ones newest first and keeps at most the cap', () => {
    let list = upsertDelivery([], delivery({ createdAt: '2025-01-01T12:00:00Z' }), 2);
    list = upsertDelivery(list, delivery({ createdAt: '2025-01-01T12:00:02Z' }), 2);
    list = upsertDelivery(list, delivery({ createdAt: '2025-01-01T12:00:01Z' }), 2);
    expect(list.map((x) => x.createdAt)).toEqual(['2025-01-01T12:00:02Z', '2025-01-01T12:00:01Z']);
  });

  it('follows a delivery from pending to delivered, never back', () => {
    const p = delivery({ status: 'pending', attempts: 1, lastError: 'HTTP 500' });
    const done = { ...p, status: 'delivered' as const, attempts: 2, lastError: null };
    const list = upsertDelivery([p], done);
    expect(list[0]).toEqual(done);
    expect(upsertDelivery(list, p)).toBe(list); // the late "pending" of attempt 1
    // The same attempt: an end wins over pending.
    const failed = { ...p, status: 'failed' as const };
    expect(upsertDelivery([p], failed)[0]!.status).toBe('failed');
    expect(upsertDelivery([failed], p)[0]!.status).toBe('failed');
  });

  it('merges a page into what is there', () => {
    const a = delivery({ createdAt: '2025-01-01T12:00:00Z' });
    const b = delivery({ createdAt: '2025-01-01T12:00:01Z', status: 'delivered', attempts: 1 });
    const merged = mergeDeliveries([{ ...b }], [a, { ...b, status: 'pending', attempts: 0 }]);
    expect(merged.map((x) => [x.deliveryId, x.status])).toEqual([
      [b.deliveryId, 'delivered'],
      [a.deliveryId, 'pending'],
    ]);
  });
});
