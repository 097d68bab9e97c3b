// The page's jobs: one Map, the list's order, and subscriptions per job and for the list,
// so that a progress event renders its own row and nothing else.
import type { Job, Status } from '../api/types';
import { matchesFilter, sameFilter, type Filter } from '../lib/filters';
import {
  appendPage,
  applyEvent,
  insertSorted,
  mergeFirstPage,
  mergeRestJob,
  removeId,
  type ListOrder,
  type LiveEvent,
} from '../lib/merge';

export interface ListState extends ListOrder {
  filter: Filter;
  /** The first page of this filter has arrived. */
  loaded: boolean;
  loadingMore: boolean;
  error: string | null;
}

export interface Transition {
  job: Job;
  from: Status;
  to: Status;
}

export interface EventsResult {
  /** Jobs the page has never seen: fetch them. */
  unknown: string[];
  /** Jobs whose status changed through these events: refresh them from REST. */
  statusChanged: string[];
  transitions: Transition[];
}

type Listener = () => void;

export class JobStore {
  private jobs = new Map<string, Job>();
  private eventAt = new Map<string, number>();
  private jobListeners = new Map<string, Set<Listener>>();
  private listListeners = new Set<Listener>();
  private transitionListeners = new Set<(t: Transition) => void>();
  /** Jobs the page did not know when their end was announced: they are fetched, and
   * their end is still told once they arrive (a quick job posted by another client). */
  private endedUnseen = new Map<string, Status>();
  /** Jobs the page first heard of from an event, while their answer from REST is awaited. */
  private heardLive = new Set<string>();
  /** Jobs heard of live whose answer from REST showed them ended before their end event
   * came (the event still on its way, or queued for the next frame): the end is told when
   * that event arrives. */
  private endedFetched = new Map<string, Status>();
  private list: ListState;
  private clock: () => number;

  constructor(filter: Filter = { tab: 'all', q: '' }, clock: () => number = () => performance.now()) {
    this.list = { ids: [], nextCursor: null, filter, loaded: false, loadingMore: false, error: null };
    this.clock = clock;
  }

  // --- reading (stable snapshots for useSyncExternalStore) ---

  get = (id: string): Job | undefined => this.jobs.get(id);

  getList = (): ListState => this.list;

  now(): number {
    return this.clock();
  }

  subscribeJob = (id: string, listener: Listener): (() => void) => {
    let set = this.jobListeners.get(id);
    if (!set) this.jobListeners.set(id, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.jobListeners.delete(id);
    };
  };

  subscribeList = (listener: Listener): (() => void) => {
    this.listListeners.add(listener);
    return () => this.listListeners.delete(listener);
  };

  /** Status changes of known jobs (for the toasts), whatever brought them. */
  onTransition(listener: (t: Transition) => void): () => void {
    this.transitionListeners.add(listener);
    return () => this.transitionListeners.delete(listener);
  }

  // --- writing ---

  setFilter(filter: Filter): void {
    if (sameFilter(filter, this.list.filter)) {
      if (filter.q !== this.list.filter.q) this.setList({ ...this.list, filter });
      return;
    }
    this.setList({ ids: [], nextCursor: null, filter, loaded: false, loadingMore: false, error: null });
  }

  setLoading(loadingMore: boolean): void {
    if (this.list.loadingMore !== loadingMore) this.setList({ ...this.list, loadingMore });
  }

  setError(error: string | null, filter: Filter = this.list.filter): void {
    if (!sameFilter(filter, this.list.filter)) return;
    if (this.list.error !== error) this.setList({ ...this.list, error, loadingMore: false });
  }

  /**
   * A first page of `filter` (asked at `requestedAt`): replaces the list when `replace`
   * (a new filter), or is merged into it (a poll or a resync).
   */
  applyFirstPage(
    items: Job[],
    nextCursor: string | null,
    filter: Filter,
    requestedAt: number,
    replace = false,
  ): void {
    if (!sameFilter(filter, this.list.filter)) return;
    for (const job of items) this.mergeJob(job, requestedAt);
    const ids = items.map((j) => j.jobId);
    const order =
      replace || !this.list.loaded
        ? { ids, nextCursor }
        : mergeFirstPage(this.list, ids, nextCursor, this.get);
    this.setList({ ...this.list, ...order, loaded: true, error: null });
  }

  applyNextPage(items: Job[], nextCursor: string | null, filter: Filter, requestedAt: number): void {
    if (!sameFilter(filter, this.list.filter)) return;
    for (const job of items) this.mergeJob(job, requestedAt);
    const order = appendPage(this.list, items.map((j) => j.jobId), nextCursor);
    this.setList({ ...this.list, ...order, loadingMore: false, error: null });
  }

  /** One job from REST (GET /downloads/{id}, an action's answer). */
  upsert(job: Job, requestedAt: number = this.clock()): void {
    this.mergeJob(job, requestedAt);
    this.placeInList(job.jobId);
  }

  /** A job's status as the server said in a 409. */
  setStatus(id: string, status: Status): void {
    const job = this.jobs.get(id);
    if (!job || job.status === status) return;
    this.replaceJob({ ...job, status, speed: null, eta: null });
    this.placeInList(id);
  }

  remove(id: string): void {
    this.endedUnseen.delete(id);
    this.heardLive.delete(id);
    this.endedFetched.delete(id);
    if (this.jobs.delete(id)) this.notifyJob(id);
    this.eventAt.delete(id);
    const order = removeId(this.list, id);
    if (order !== this.list) this.setList({ ...this.list, ...order });
  }

  /** A batch of socket events, in the order they arrived. */
  applyEvents(events: readonly LiveEvent[]): EventsResult {
    const unknown = new Set<string>();
    const statusChanged = new Set<string>();
    const transitions: Transition[] = [];
    const touched = new Set<string>();
    const at = this.clock();
    for (const ev of events) {
      const id = ev.data.jobId;
      const job = this.jobs.get(id);
      if (!job) {
        unknown.add(id);
        this.heardLive.add(id);
        const ended = endOf(ev);
        if (ended) this.endedUnseen.set(id, ended);
        continue;
      }
      this.eventAt.set(id, at);
      const ended = endOf(ev);
      if (ended && job.status === ended && this.endedFetched.get(id) === ended) {
        this.endedFetched.delete(id);
        transitions.push({ job, from: 'running', to: ended });
      } else if (ev.kind === 'job-update' && ev.data.status && !isEnd(ev.data.status)) {
        this.endedFetched.delete(id); // it moved on (a retry): that end is no news any more
      }
      const next = applyEvent(job, ev);
      if (next === job) continue;
      this.jobs.set(id, next);
      touched.add(id);
      if (next.status !== job.status) {
        statusChanged.add(id);
        transitions.push({ job: next, from: job.status, to: next.status });
      }
    }
    for (const id of touched) this.notifyJob(id);
    for (const id of statusChanged) this.placeInList(id);
    for (const t of transitions) this.emitTransition({ ...t, job: this.jobs.get(t.job.jobId) ?? t.job });
    return { unknown: [...unknown], statusChanged: [...statusChanged], transitions };
  }

  // --- internals ---

  private mergeJob(remote: Job, requestedAt: number): void {
    const local = this.jobs.get(remote.jobId);
    const since = (this.eventAt.get(remote.jobId) ?? -Infinity) > requestedAt;
    const next = mergeRestJob(local, remote, since);
    if (next === local) return;
    this.jobs.set(remote.jobId, next);
    this.notifyJob(remote.jobId);
    if (local && local.status !== next.status) {
      this.emitTransition({ job: next, from: local.status, to: next.status });
    }
    const ended = this.endedUnseen.get(remote.jobId);
    if (ended !== undefined) {
      this.endedUnseen.delete(remote.jobId);
      if (!local && next.status === ended) this.emitTransition({ job: next, from: 'running', to: ended });
    } else if (this.heardLive.has(remote.jobId) && !local && isEnd(next.status)) {
      this.endedFetched.set(remote.jobId, next.status);
    }
    this.heardLive.delete(remote.jobId);
  }

  private replaceJob(job: Job): void {
    this.jobs.set(job.jobId, job);
    this.notifyJob(job.jobId);
  }

  /** Puts a job in the list or takes it out, by whether it matches the filter now. */
  private placeInList(id: string): void {
    const job = this.jobs.get(id);
    if (!this.list.loaded) return;
    let order: ListOrder = this.list;
    if (job && matchesFilter(job, this.list.filter)) order = insertSorted(this.list, job, this.get);
    else order = removeId(this.list, id);
    if (order !== this.list) this.setList({ ...this.list, ...order });
  }

  private setList(next: ListState): void {
    this.list = next;
    for (const l of [...this.listListeners]) l();
  }

  private notifyJob(id: string): void {
    const set = this.jobListeners.get(id);
    if (set) for (const l of [...set]) l();
  }

  private emitTransition(t: Transition): void {
    for (const l of [...this.transitionListeners]) l(t);
  }
}

function isEnd(status: Status): boolean {
  return status === 'completed' || status === 'failed';
}

/** The status an event ends a job in, if it does. */
function endOf(ev: LiveEvent): Status | null {
  if (ev.kind === 'completed') return 'completed';
  if (ev.kind === 'failed') return 'failed';
  if (ev.kind === 'job-update' && (ev.data.status === 'completed' || ev.data.status === 'failed')) {
    return ev.data.status;
  }
  return null;
}
