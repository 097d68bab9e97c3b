import type { Delivery, Job, Subscription } from '../api/types';

let n = 0;

/** A job as GET /downloads shows it, with what a test cares about changed. */
export function job(over: Partial<Job> = {}): Job {
  n += 1;
  const id = over.jobId ?? `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
  return {
    jobId: id,
    url: `https://example.com/video-${n}.mp4`,
    type: 'aria2',
    status: 'running',
    stage: 'downloading',
    progress: 10,
    speed: 1000,
    eta: 60,
    totalBytes: 1_000_000,
    filename: null,
    size: null,
    outputPath: null,
    errorCode: null,
    errorMessage: null,
    attempts: 1,
    options: {},
    createdAt: '2025-01-01T12:00:00+00:00',
    updatedAt: '2025-01-01T12:00:00+00:00',
    startedAt: '2025-01-01T12:00:01+00:00',
    finishedAt: null,
    instanceId: 'a',
    subscriptionId: null,
    ...over,
  };
}

/** Jobs created one second apart, the newest first (as the server pages them). */
export function jobsNewestFirst(count: number, over: Partial<Job> = {}): Job[] {
  const base = Date.parse('2025-01-01T12:00:00Z');
  return Array.from({ length: count }, (_, i) =>
    job({ createdAt: new Date(base + (count - i) * 1000).toISOString(), ...over }),
  );
}

let s = 0;

/** A subscription as GET /subscriptions shows it. */
export function subscription(over: Partial<Subscription> = {}): Subscription {
  s += 1;
  return {
    subscriptionId: `10000000-0000-4000-8000-${String(s).padStart(12, '0')}`,
    url: `https://example.com/channel-${s}`,
    type: 'ytdlp',
    options: {},
    intervalS: 3600,
    maxItems: 100,
    backfill: false,
    enabled: true,
    title: null,
    seen: 0,
    checking: false,
    lastCheck: null,
    nextCheckAt: '2025-01-01T13:00:00+00:00',
    createdAt: '2025-01-01T12:00:00+00:00',
    updatedAt: '2025-01-01T12:00:00+00:00',
    ...over,
  };
}

let d = 0;

/** A notification delivery as GET /notifications shows it. */
export function delivery(over: Partial<Delivery> = {}): Delivery {
  d += 1;
  return {
    deliveryId: `20000000-0000-4000-8000-${String(d).padStart(12, '0')}`,
    target: 'home',
    event: 'completed',
    jobId: null,
    subscriptionId: null,
    status: 'pending',
    attempts: 0,
    lastError: null,
    createdAt: '2025-01-01T12:00:00+00:00',
    nextAttemptAt: null,
    deliveredAt: null,
    ...over,
  };
}
