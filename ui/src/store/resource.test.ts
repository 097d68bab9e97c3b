import { describe, expect, it, vi } from 'vitest';
import { ApiError } from '../api/client';
import { ResourceStore } from './resource';

describe('ResourceStore', () => {
  it('loads once when wanted, and tells its listeners', async () => {
    const loader = vi.fn(async () => [1, 2]);
    const r = new ResourceStore(loader);
    const seen: string[] = [];
    r.subscribe(() => seen.push(r.get().availability));
    await Promise.all([r.ensure(), r.ensure()]);
    expect(r.get()).toEqual({ availability: 'ready', items: [1, 2], error: null });
    expect(loader).toHaveBeenCalledTimes(1);
    expect(seen).toEqual(['loading', 'ready']);
    await r.ensure();
    expect(loader).toHaveBeenCalledTimes(1);
  });

  it('is unavailable on a 404 (an older server), and ignores events then', async () => {
    const r = new ResourceStore<number>(async () => {
      throw new ApiError(404, 'not_found', 'no such route');
    });
    await r.ensure();
    expect(r.get().availability).toBe('unavailable');
    r.update((l) => [...l, 1]);
    expect(r.get().items).toEqual([]);
  });

  it('keeps what it showed when a reload fails, and says why', async () => {
    let fail = false;
    const r = new ResourceStore(async () => {
      if (fail) throw new ApiError(0, 'network', 'mediad cannot be reached.');
      return ['a'];
    });
    await r.ensure();
    fail = true;
    await r.refresh();
    expect(r.get()).toEqual({ availability: 'ready', items: ['a'], error: 'mediad cannot be reached.' });
    fail = false;
    await r.refresh();
    expect(r.get().error).toBeNull();
  });

  it('an error before any load is an error state', async () => {
    const r = new ResourceStore<number>(async () => {
      throw new ApiError(500, 'internal', 'boom');
    });
    await r.ensure();
    expect(r.get()).toMatchObject({ availability: 'error', error: 'boom' });
  });

  it('a refresh asked during a load runs once after it', async () => {
    let calls = 0;
    let release: () => void = () => undefined;
    const r = new ResourceStore(
      () =>
        new Promise<number[]>((resolve) => {
          calls += 1;
          const n = calls;
          release = () => resolve([n]);
        }),
    );
    const first = r.refresh();
    void r.refresh();
    void r.refresh();
    release();
    await first;
    await vi.waitFor(() => expect(calls).toBe(2));
    release();
    await vi.waitFor(() => expect(r.get().items).toEqual([2]));
  });

  it('refreshIfLoaded does nothing before the first load', () => {
    const loader = vi.fn(async () => [1]);
    new ResourceStore(loader).refreshIfLoaded();
    expect(loader).not.toHaveBeenCalled();
  });

  it('update changes the items and returns the same state when nothing changed', async () => {
    const r = new ResourceStore(async () => [1]);
    await r.ensure();
    const before = r.get();
    r.update((l) => l);
    expect(r.get()).toBe(before);
    r.update((l) => [...l, 2]);
    expect(r.get().items).toEqual([1, 2]);
  });
});
