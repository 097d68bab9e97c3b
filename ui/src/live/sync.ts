// Keeps the page's jobs current: the list's pages from REST, the socket's events, and
// polling while the socket is down (see lib/connection.ts for the states).
import { io } from 'socket.io-client';
import { ApiError } from '../api/client';
import type { Job, JobPage } from '../api/types';
import {
  nextState,
  polls,
  POLL_MS,
  RESYNC_RETRY_MS,
  startsResync,
  type ConnEvent,
  type ConnState,
} from '../lib/connection';
import type { Filter } from '../lib/filters';
import type { LiveEvent } from '../lib/merge';
import type { JobStore } from '../store/jobs';

/** What the sync needs of a Socket.IO socket (a fake one in tests). */
export interface SocketLike {
  readonly connected: boolean;
  readonly active: boolean;
  on(event: string, listener: (...args: any[]) => void): unknown;
  emit(event: string, ...args: any[]): unknown;
  connect(): unknown;
  disconnect(): unknown;
}

export interface SyncDeps {
  store: JobStore;
  listPage: (filter: Filter, cursor?: string | null) => Promise<JobPage>;
  getJob: (jobId: string) => Promise<Job>;
  /** Creates the socket (not connected yet); `auth` is read on every (re)connection. */
  createSocket?: (auth: () => Record<string, string>) => SocketLike;
  getToken: () => string | null;
  /** The socket refused the token: ask for one. */
  onAuthRequired: (message: string) => void;
  /** True while the page waits for a token (polls are held). */
  authBlocked: () => boolean;
  /** Runs a batch flush later (requestAnimationFrame in the page). */
  schedule?: (flush: () => void) => void;
  setTimer?: (fn: () => void, ms: number) => unknown;
  clearTimer?: (handle: unknown) => void;
}

export const AUTH_MESSAGE = 'a valid API token is required';
const EVENTS = ['progress', 'job-update', 'completed', 'failed'] as const;
/** Events about other things than jobs, sent to clients following every job: passed on as they come. */
export const OTHER_EVENTS = [
  'subscription-update',
  'subscription-deleted',
  'cookies-update',
  'notification-update',
] as const;
export type OtherEvent = (typeof OTHER_EVENTS)[number];

function defaultSchedule(flush: () => void): void {
  // The next frame; a timer too, since a hidden tab gets no frames (events would pile up).
  let done = false;
  const run = () => {
    if (done) return;
    done = true;
    flush();
  };
  if (typeof requestAnimationFrame === 'function' && !(typeof document !== 'undefined' && document.hidden)) {
    requestAnimationFrame(run);
  }
  setTimeout(run, 250);
}

function defaultSocket(auth: () => Record<string, string>): SocketLike {
  return io('/jobs', {
    path: '/socket.io/',
    autoConnect: false,
    auth: (cb) => cb(auth()),
    // Long-polling first, then the upgrade to a WebSocket (Socket.IO's default): a refused
    // poll fails fast, where a WebSocket closed before it opened waits for `timeout`.
    // Back within a few seconds of the server.
    timeout: 8000,
    reconnectionDelay: 1000,
    reconnectionDelayMax: 3000,
  });
}

export class Sync {
  private state: ConnState = 'connecting';
  private stateListeners = new Set<() => void>();
  private socket: SocketLike | null = null;
  private queue: LiveEvent[] = [];
  private flushScheduled = false;
  private pollTimer: unknown = null;
  private resyncTimer: unknown = null;
  private pollInFlight = false;
  private fetching = new Set<string>();
  private refetch = new Set<string>();
  private firstPageSeq = 0;
  private stopped = false;
  private otherListeners = new Map<OtherEvent, Set<(data: unknown) => void>>();
  private liveAgainListeners = new Set<() => void>();
  private deps: Required<SyncDeps>;

  constructor(deps: SyncDeps) {
    this.deps = {
      createSocket: defaultSocket,
      schedule: defaultSchedule,
      setTimer: (fn, ms) => setTimeout(fn, ms),
      clearTimer: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
      ...deps,
    } as Required<SyncDeps>;
  }

  getState = (): ConnState => this.state;

  subscribe = (listener: () => void): (() => void) => {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  };

  /** Listens to one of OTHER_EVENTS (whether the socket is up yet or not). */
  on(event: OtherEvent, listener: (data: unknown) => void): () => void {
    let set = this.otherListeners.get(event);
    if (!set) this.otherListeners.set(event, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  /** Called each time the page is live again after a (re)connection: what the socket
   * missed meanwhile is lost, so the other lists reload then. */
  onLiveAgain(listener: () => void): () => void {
    this.liveAgainListeners.add(listener);
    return () => this.liveAgainListeners.delete(listener);
  }

  /** Connects the socket (once). */
  start(): void {
    if (this.socket) return;
    this.stopped = false;
    const socket = this.deps.createSocket((): Record<string, string> => {
      const token = this.deps.getToken();
      return token ? { token } : {};
    });
    this.socket = socket;
    socket.on('connect', () => this.subscribeAll());
    socket.on('disconnect', (reason: string) => {
      this.dispatch('disconnected');
      // The server closed it: Socket.IO does not come back by itself then.
      if (reason === 'io server disconnect' && !this.stopped) {
        this.deps.setTimer(() => this.socket?.connect(), 1000);
      }
    });
    socket.on('connect_error', (err: Error) => {
      this.dispatch('connect_error');
      const message = err?.message ?? '';
      if (message.includes('token')) this.deps.onAuthRequired(message);
      else if (!socket.active && !this.stopped) {
        // A refusal that is not about the token: try again later.
        this.deps.setTimer(() => this.socket?.connect(), 3000);
      }
    });
    for (const name of EVENTS) {
      socket.on(name, (data: unknown) => this.push({ kind: name, data } as LiveEvent));
    }
    for (const name of OTHER_EVENTS) {
      socket.on(name, (data: unknown) => {
        for (const l of [...(this.otherListeners.get(name) ?? [])]) l(data);
      });
    }
    socket.connect();
  }

  stop(): void {
    this.stopped = true;
    this.stopPolling();
    this.socket?.disconnect();
    this.socket = null;
  }

  /** Connects again (with a new token). */
  reconnect(): void {
    if (!this.socket) return this.start();
    this.socket.disconnect();
    this.socket.connect();
  }

  /** Loads the first page of the store's filter, replacing the list. */
  async loadFirstPage(): Promise<void> {
    await this.fetchFirstPage(true).catch(() => undefined);
  }

  /** Loads the next page of the list (infinite scroll). */
  async loadMore(): Promise<void> {
    const { store } = this.deps;
    const list = store.getList();
    if (!list.loaded || list.loadingMore || list.nextCursor === null) return;
    const filter = list.filter;
    const at = store.now();
    store.setLoading(true);
    try {
      const page = await this.deps.listPage(filter, list.nextCursor);
      store.applyNextPage(page.items, page.nextCursor, filter, at);
    } catch (e) {
      store.setLoading(false);
      store.setError(e instanceof ApiError ? e.message : 'The jobs could not be loaded.', filter);
    }
  }

  /** A job the page should show now (just created, or acted on). */
  async refreshJob(jobId: string): Promise<void> {
    if (this.fetching.has(jobId)) {
      // News about the job while its answer is on the way: ask again once it lands, or a
      // job that ended meanwhile would stay as the first answer found it.
      this.refetch.add(jobId);
      return;
    }
    this.fetching.add(jobId);
    const at = this.deps.store.now();
    try {
      const job = await this.deps.getJob(jobId);
      this.deps.store.upsert(job, at);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) this.deps.store.remove(jobId);
    } finally {
      this.fetching.delete(jobId);
      if (this.refetch.delete(jobId)) void this.refreshJob(jobId);
    }
  }

  // --- the socket ---

  private subscribeAll(): void {
    const socket = this.socket;
    if (!socket) return;
    let answered = false;
    const timer = this.deps.setTimer(() => {
      if (answered || this.socket !== socket) return;
      // No answer: start over.
      socket.disconnect();
      socket.connect();
    }, 10000);
    socket.emit('subscribe', { all: true }, (ack: { ok?: boolean } | undefined) => {
      answered = true;
      this.deps.clearTimer(timer);
      if (ack && ack.ok === false) {
        this.dispatch('connect_error');
        return;
      }
      this.dispatch('connected');
    });
  }

  private push(ev: LiveEvent): void {
    if (!ev.data || typeof ev.data.jobId !== 'string') return;
    this.queue.push(ev);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    this.deps.schedule(() => this.flush());
  }

  /** Applies the events queued since the last frame, all at once. */
  flush(): void {
    this.flushScheduled = false;
    if (!this.queue.length) return;
    const batch = this.queue;
    this.queue = [];
    const result = this.deps.store.applyEvents(batch);
    for (const id of result.unknown) void this.refreshJob(id);
    // A status change brings fields the events do not carry (attempts, times, file name).
    for (const id of result.statusChanged) void this.refreshJob(id);
  }

  // --- the state machine's effects ---

  private dispatch(event: ConnEvent): void {
    const prev = this.state;
    const next = nextState(prev, event);
    if (next === prev) return;
    this.state = next;
    if (polls(next)) this.startPolling();
    else this.stopPolling();
    if (startsResync(prev, next)) void this.resync();
    for (const l of [...this.stateListeners]) l();
    if (next === 'resyncing') for (const l of [...this.liveAgainListeners]) l();
  }

  private async resync(): Promise<void> {
    if (this.resyncTimer !== null) {
      this.deps.clearTimer(this.resyncTimer);
      this.resyncTimer = null;
    }
    try {
      await this.fetchFirstPage(false);
      if (this.state === 'resyncing') this.dispatch('resync_ok');
    } catch {
      if (this.state !== 'resyncing') return;
      this.dispatch('resync_failed');
      this.resyncTimer = this.deps.setTimer(() => {
        this.resyncTimer = null;
        if (this.state === 'resyncing') void this.resync();
      }, RESYNC_RETRY_MS);
    }
  }

  private startPolling(): void {
    if (this.pollTimer !== null) return;
    const tick = () => {
      this.pollTimer = this.deps.setTimer(tick, POLL_MS);
      if (this.pollInFlight || this.deps.authBlocked()) return;
      this.pollInFlight = true;
      this.fetchFirstPage(false)
        .catch(() => undefined)
        .finally(() => {
          this.pollInFlight = false;
        });
    };
    this.pollTimer = this.deps.setTimer(tick, POLL_MS);
  }

  private stopPolling(): void {
    if (this.pollTimer === null) return;
    this.deps.clearTimer(this.pollTimer);
    this.pollTimer = null;
  }

  /** Fetches the first page of the current filter; `replace` for a new filter. */
  private async fetchFirstPage(replace: boolean): Promise<void> {
    const { store } = this.deps;
    const filter = store.getList().filter;
    const seq = ++this.firstPageSeq;
    const at = store.now();
    try {
      const page = await this.deps.listPage(filter);
      // A newer first page (another filter, or a later poll) was asked meanwhile.
      if (replace && seq !== this.firstPageSeq) return;
      store.applyFirstPage(page.items, page.nextCursor, filter, at, replace);
    } catch (e) {
      if (replace) {
        store.setError(e instanceof ApiError ? e.message : 'The jobs could not be loaded.', filter);
      }
      throw e;
    }
  }
}
