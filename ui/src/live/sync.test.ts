import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Job, JobPage } from '../api/types';
import type { Filter } from '../lib/filters';
import { JobStore } from '../store/jobs';
import { job } from '../test/fixtures';
import { Sync, type SocketLike } from './sync';

class FakeSocket implements SocketLike {
  connected = false;
  active = true;
  handlers = new Map<string, ((...a: any[]) => void)[]>();
  emitted: { event: string; args: any[] }[] = [];
  connects = 0;
  ackWith: unknown = { ok: true };

  on(event: string, fn: (...a: any[]) => void) {
    this.handlers.set(event, [...(this.handlers.get(event) ?? []), fn]);
  }
  emit(event: string, ...args: any[]) {
    this.emitted.push({ event, args });
    const ack = args.at(-1);
    if (event === 'subscribe' && typeof ack === 'function') ack(this.ackWith);
  }
  connect() {
    this.connects += 1;
  }
  disconnect() {
    this.connected = false;
  }
  fire(event: string, ...args: any[]) {
    if (event === 'connect') this.connected = true;
    for (const fn of this.handlers.get(event) ?? []) fn(...args);
  }
}

function setup(pages: () => JobPage) {
  const store = new JobStore({ tab: 'all', q: '' }, () => Date.now());
  const socket = new FakeSocket();
  const listPage = vi.fn(async (_f: Filter) => pages());
  const getJob = vi.fn(async (id: string): Promise<Job> => job({ jobId: id }));
  const flushes: (() => void)[] = [];
  const onAuthRequired = vi.fn();
  const sync = new Sync({
    store,
    listPage,
    getJob,
    createSocket: () => socket,
    getToken: () => null,
    onAuthRequired,
    authBlocked: () => false,
    schedule: (f) => flushes.push(f),
  });
  return { store, socket, listPage, getJob, sync, flushes, onAuthRequired };
}

describe('Sync', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('subscribes to every job on each connection and resyncs once, then does not poll', async () => {
    const { socket, sync, listPage } = setup(() => ({ items: [], nextCursor: null }));
    sync.start();
    socket.fire('connect');
    expect(socket.emitted.filter((e) => e.event === 'subscribe').map((e) => e.args[0])).toEqual([{ all: true }]);
    expect(sync.getState()).toBe('resyncing');
    await vi.advanceTimersByTimeAsync(0);
    expect(sync.getState()).toBe('connected');
    expect(listPage).toHaveBeenCalledTimes(1);
    await vi.advanceTimersByTimeAsync(30_000);
    expect(listPage).toHaveBeenCalledTimes(1); // no polling while connected
  });

  it('polls every 3 s while disconnected, resyncs once on reconnect, then stops', async () => {
    const { socket, sync, listPage } = setup(() => ({ items: [], nextCursor: null }));
    sync.start();
    socket.fire('connect');
    await vi.advanceTimersByTimeAsync(0);
    listPage.mockClear();

    socket.fire('disconnect', 'transport close');
    expect(sync.getState()).toBe('polling');
    await vi.advanceTimersByTimeAsync(9_100);
    expect(listPage).toHaveBeenCalledTimes(3);

    socket.fire('connect');
    await vi.advanceTimersByTimeAsync(0);
    expect(sync.getState()).toBe('connected');
    expect(listPage).toHaveBeenCalledTimes(4); // the resync
    await vi.advanceTimersByTimeAsync(30_000);
    expect(listPage).toHaveBeenCalledTimes(4);
    expect(socket.emitted.filter((e) => e.event === 'subscribe')).toHaveLength(2);
  });

  it('a failed resync is tried again', async () => {
    let fail = true;
    const { socket, sync, listPage } = setup(() => {
      if (fail) throw new Error('503');
      return { items: [], nextCursor: null };
    });
    sync.start();
    socket.fire('connect');
    await vi.advanceTimersByTimeAsync(0);
    expect(sync.getState()).toBe('resyncing');
    fail = false;
    await vi.advanceTimersByTimeAsync(3_000);
    expect(sync.getState()).toBe('connected');
    expect(listPage).toHaveBeenCalledTimes(2);
  });

  it('batches events and applies them in one go; unknown jobs are fetched', async () => {
    const known = job({ progress: 5 });
    const { socket, sync, store, flushes, getJob } = setup(() => ({ items: [known], nextCursor: null }));
    sync.start();
    socket.fire('connect');
    await vi.advanceTimersByTimeAsync(0);
    const seen: number[] = [];
    store.subscribeJob(known.jobId, () => seen.push(store.get(known.jobId)!.progress!));

    for (const p of [10, 20, 30]) {
      socket.fire('progress', { jobId: known.jobId, stage: 'downloading', progress: p, speed: 1, eta: 1, totalBytes: 9 });
    }
    socket.fire('progress', { jobId: 'unknown-id', stage: 'downloading', progress: 1, speed: 1, eta: 1, totalBytes: 9 });
    expect(flushes).toHaveLength(1);
    expect(store.get(known.jobId)!.progress).toBe(5); // not yet: the next frame
    flushes[0]!();
    expect(store.get(known.jobId)!.progress).toBe(30);
    expect(seen).toEqual([30]); // one render for three events
    expect(getJob).toHaveBeenCalledWith('unknown-id');
  });

  it('asks again for a job that changed while its answer was on the way', async () => {
    const { sync, getJob, store } = setup(() => ({ items: [], nextCursor: null }));
    const answers: ((j: Job) => void)[] = [];
    getJob.mockImplementation(() => new Promise<Job>((resolve) => answers.push(resolve)));
    const first = sync.refreshJob('j1');
    void sync.refreshJob('j1'); // news about j1 meanwhile: no second request at once…
    expect(getJob).toHaveBeenCalledTimes(1);
    answers[0]!(job({ jobId: 'j1', status: 'running' }));
    await first;
    expect(getJob).toHaveBeenCalledTimes(2); // …but one once the first answer landed
    answers[1]!(job({ jobId: 'j1', status: 'failed' }));
    await vi.waitFor(() => expect(store.get('j1')?.status).toBe('failed'));
    expect(getJob).toHaveBeenCalledTimes(2);
  });

  it('asks for a token when the socket refuses it', () => {
    const { socket, sync, onAuthRequired } = setup(() => ({ items: [], nextCursor: null }));
    sync.start();
    socket.active = false;
    socket.fire('connect_error', new Error('a valid API token is required'));
    expect(onAuthRequired).toHaveBeenCalledWith('a valid API token is required');
    expect(sync.getState()).toBe('polling');
  });
});

describe('Sync, the events beside the jobs', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('passes subscription, cookies and notification events on, without a job id', () => {
    const { socket, sync } = setup(() => ({ items: [], nextCursor: null }));
    const got: [string, unknown][] = [];
    for (const name of ['subscription-update', 'subscription-deleted', 'cookies-update', 'notification-update'] as const) {
      sync.on(name, (data) => got.push([name, data]));
    }
    sync.start();
    socket.fire('subscription-update', { subscriptionId: 's1' });
    socket.fire('cookies-update', { items: [] });
    socket.fire('subscription-deleted', { subscriptionId: 's1' });
    socket.fire('notification-update', { deliveryId: 'd1' });
    expect(got).toEqual([
      ['subscription-update', { subscriptionId: 's1' }],
      ['cookies-update', { items: [] }],
      ['subscription-deleted', { subscriptionId: 's1' }],
      ['notification-update', { deliveryId: 'd1' }],
    ]);
  });

  it('says when the page is live again after the socket was lost (the lists reload)', async () => {
    const { socket, sync } = setup(() => ({ items: [], nextCursor: null }));
    const again = vi.fn();
    const off = sync.onLiveAgain(again);
    sync.start();
    socket.fire('connect');
    await vi.advanceTimersByTimeAsync(0);
    expect(again).toHaveBeenCalledTimes(1);
    socket.fire('disconnect', 'transport close');
    socket.fire('connect');
    await vi.advanceTimersByTimeAsync(0);
    expect(again).toHaveBeenCalledTimes(2);
    off();
    socket.fire('disconnect', 'transport close');
    socket.fire('connect');
    expect(again).toHaveBeenCalledTimes(2);
  });
});
