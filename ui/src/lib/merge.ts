// Merging what the socket says and what REST answers into the page's jobs. Pure.
import type {
  CompletedEvent,
  FailedEvent,
  Job,
  JobUpdateEvent,
  ProgressEvent,
} from '../api/types';

export type LiveEvent =
  | { kind: 'progress'; data: ProgressEvent }
  | { kind: 'job-update'; data: JobUpdateEvent }
  | { kind: 'completed'; data: CompletedEvent }
  | { kind: 'failed'; data: FailedEvent };

/** The higher of two progress values; a known value is never replaced by an unknown one. */
function notBackwards(current: number | null, next: number | null): number | null {
  if (next === null || next === undefined) return current;
  if (current === null || current === undefined) return next;
  return Math.max(current, next);
}

function changed(job: Job, next: Job): Job {
  for (const key of Object.keys(next) as (keyof Job)[]) {
    if (next[key] !== job[key]) return next;
  }
  return job;
}

/**
 * A socket event applied to a job. Returns the same object when nothing changed (so the
 * row does not render again).
 *
 * - `progress` moves a running (or just-queued) job on; within an attempt its progress
 *   never goes backwards, and events for a job that is no longer running are ignored.
 * - `job-update` carries every status change: a new status may start a new attempt, whose
 *   progress starts over, so its progress is taken as it is.
 * - `completed` / `failed` are final.
 */
export function applyEvent(job: Job, ev: LiveEvent): Job {
  switch (ev.kind) {
    case 'progress': {
      const d = ev.data;
      if (job.status !== 'running' && job.status !== 'queued') return job;
      return changed(job, {
        ...job,
        status: 'running',
        stage: d.stage ?? job.stage,
        progress: notBackwards(job.progress, d.progress),
        speed: d.speed,
        eta: d.eta,
        totalBytes: d.totalBytes ?? job.totalBytes,
      });
    }
    case 'job-update': {
      const d = ev.data;
      const sameStatus = d.status === job.status;
      const running = d.status === 'running';
      const next: Job = {
        ...job,
        status: d.status,
        stage: d.stage,
        progress: sameStatus ? notBackwards(job.progress, d.progress) : d.progress,
        speed: running ? job.speed : null,
        eta: running ? job.eta : null,
      };
      if (d.status === 'queued' || d.status === 'running') {
        next.errorCode = null;
        next.errorMessage = null;
      }
      if (!sameStatus && d.status === 'queued') {
        next.speed = null;
        next.eta = null;
      }
      return changed(job, next);
    }
    case 'completed': {
      const d = ev.data;
      return changed(job, {
        ...job,
        status: 'completed',
        progress: 100,
        speed: null,
        eta: null,
        filename: d.filename ?? job.filename,
        size: d.size ?? job.size,
        outputPath: d.outputPath ?? job.outputPath,
        errorCode: null,
        errorMessage: null,
      });
    }
    case 'failed': {
      const d = ev.data;
      return changed(job, {
        ...job,
        status: 'failed',
        speed: null,
        eta: null,
        errorCode: d.errorCode,
        errorMessage: d.message,
      });
    }
  }
}

/** The fields the socket changes; the rest only REST knows. */
const LIVE_FIELDS = [
  'status',
  'stage',
  'progress',
  'speed',
  'eta',
  'totalBytes',
  'errorCode',
  'errorMessage',
] as const satisfies readonly (keyof Job)[];

function sameJob(a: Job, b: Job): boolean {
  for (const key of Object.keys(b) as (keyof Job)[]) {
    if (key === 'options') {
      if (JSON.stringify(a.options) !== JSON.stringify(b.options)) return false;
    } else if (a[key] !== b[key]) return false;
  }
  return Object.keys(a).length === Object.keys(b).length;
}

/**
 * A job from REST merged with what the page has.
 *
 * `eventsSinceRequest`: a socket event for this job arrived after the request was sent, so
 * the answer is older than the page for the live fields (status, progress, …): those stay.
 * Otherwise REST is the truth — except that progress never goes backwards within the same
 * attempt of a running job (the database lags the socket by a flush).
 */
export function mergeRestJob(
  local: Job | undefined,
  remote: Job,
  eventsSinceRequest = false,
): Job {
  if (!local) return remote;
  let next: Job = remote;
  if (eventsSinceRequest && local.attempts >= remote.attempts) {
    next = { ...remote };
    for (const key of LIVE_FIELDS) (next as Record<string, unknown>)[key] = local[key];
    next.filename = local.filename ?? remote.filename;
    next.size = local.size ?? remote.size;
    next.outputPath = local.outputPath ?? remote.outputPath;
  } else if (
    remote.status === 'running' &&
    local.status === 'running' &&
    remote.attempts === local.attempts &&
    local.progress !== null &&
    (remote.progress === null || remote.progress < local.progress)
  ) {
    next = {
      ...remote,
      progress: local.progress,
      stage: local.stage ?? remote.stage,
      speed: local.speed ?? remote.speed,
      eta: local.eta ?? remote.eta,
    };
  }
  return sameJob(local, next) ? local : next;
}

/** Newest first, as GET /downloads orders: createdAt descending, then jobId descending. */
export function compareNewest(a: Job, b: Job): number {
  const ta = Date.parse(a.createdAt);
  const tb = Date.parse(b.createdAt);
  if (ta !== tb) return tb - ta;
  if (a.createdAt !== b.createdAt) return a.createdAt < b.createdAt ? 1 : -1;
  if (a.jobId === b.jobId) return 0;
  return a.jobId < b.jobId ? 1 : -1;
}

export interface ListOrder {
  ids: readonly string[];
  /** The cursor of the next page not loaded yet; null when everything is loaded. */
  nextCursor: string | null;
}

type Lookup = (id: string) => Job | undefined;

/**
 * A fresh first page (a poll or a resync) merged into the loaded list: the page is the
 * truth for the range it covers — jobs in that range that are not in it are gone (deleted,
 * or no longer matching) — and the older pages loaded before stay, with their cursor.
 */
export function mergeFirstPage(
  current: ListOrder,
  pageIds: readonly string[],
  pageCursor: string | null,
  get: Lookup,
): ListOrder {
  if (pageCursor === null) return { ids: [...pageIds], nextCursor: null };
  const lastId = pageIds.at(-1);
  const last = lastId === undefined ? undefined : get(lastId);
  if (!last) return { ids: [...pageIds], nextCursor: pageCursor };
  const inPage = new Set(pageIds);
  const older = current.ids.filter((id) => {
    if (inPage.has(id)) return false;
    const job = get(id);
    return job !== undefined && compareNewest(last, job) < 0;
  });
  return older.length
    ? { ids: [...pageIds, ...older], nextCursor: current.nextCursor }
    : { ids: [...pageIds], nextCursor: pageCursor };
}

/** A next page appended (ids already shown are not repeated). */
export function appendPage(
  current: ListOrder,
  pageIds: readonly string[],
  pageCursor: string | null,
): ListOrder {
  const have = new Set(current.ids);
  return { ids: [...current.ids, ...pageIds.filter((id) => !have.has(id))], nextCursor: pageCursor };
}

/**
 * A job put in its place (newest first). A job older than the last loaded one, while more
 * pages remain, is left for paging to bring.
 */
export function insertSorted(current: ListOrder, job: Job, get: Lookup): ListOrder {
  if (current.ids.includes(job.jobId)) return current;
  const ids = [...current.ids];
  let at = ids.findIndex((id) => {
    const other = get(id);
    return other !== undefined && compareNewest(job, other) < 0;
  });
  if (at === -1) {
    if (current.nextCursor !== null) return current;
    at = ids.length;
  }
  ids.splice(at, 0, job.jobId);
  return { ids, nextCursor: current.nextCursor };
}

export function removeId(current: ListOrder, id: string): ListOrder {
  if (!current.ids.includes(id)) return current;
  return { ids: current.ids.filter((x) => x !== id), nextCursor: current.nextCursor };
}
