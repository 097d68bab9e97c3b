// REST calls, same origin, with the API token when one is kept.
import { isStatus } from '../lib/actions';
import { listPath, type Filter } from '../lib/filters';
import type {
  Action,
  CheckList,
  CookieFile,
  CookieFileList,
  Created,
  Delivery,
  DeliveryPage,
  Detection,
  FileList,
  Health,
  Job,
  JobPage,
  NewDownload,
  NewSubscription,
  Status,
  Subscription,
  SubscriptionList,
  SubscriptionPatch,
  TargetList,
} from './types';

export const TOKEN_KEY = 'mediad.token';

export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  /** The job's current status, on a 409 from an action. */
  readonly currentStatus: Status | undefined;

  constructor(status: number, code: string, message: string, currentStatus?: Status) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.currentStatus = currentStatus;
  }
}

function storage(): Storage | null {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null;
  }
}

export function getToken(): string | null {
  return storage()?.getItem(TOKEN_KEY) || null;
}

export function setToken(token: string | null): void {
  const s = storage();
  if (!s) return;
  if (token) s.setItem(TOKEN_KEY, token);
  else s.removeItem(TOKEN_KEY);
}

type UnauthorizedHook = (error: ApiError) => void;
let onUnauthorized: UnauthorizedHook | null = null;

/** Called on every 401 (the page asks for a token). */
export function setUnauthorizedHook(hook: UnauthorizedHook | null): void {
  onUnauthorized = hook;
}

/** An ApiError from an error answer's body (`{"error": {"code", "message", "status"?}}`). */
export function errorFromBody(status: number, body: unknown): ApiError {
  const err =
    body && typeof body === 'object' && 'error' in body
      ? (body as { error: unknown }).error
      : null;
  if (err && typeof err === 'object') {
    const e = err as Record<string, unknown>;
    const code = typeof e.code === 'string' ? e.code : `http_${status}`;
    const message = typeof e.message === 'string' ? e.message : `HTTP ${status}`;
    return new ApiError(status, code, message, isStatus(e.status) ? e.status : undefined);
  }
  return new ApiError(status, `http_${status}`, `The server answered HTTP ${status}.`);
}

interface RequestOptions {
  signal?: AbortSignal;
  body?: unknown;
  /** A body sent as it is, `text/plain` (instead of `body` as JSON). */
  text?: string;
  /** Do not call the 401 hook (the token dialog checks a token itself). */
  quiet401?: boolean;
  token?: string | null;
}

export async function request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  const token = opts.token !== undefined ? opts.token : getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (opts.body !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(opts.body);
  } else if (opts.text !== undefined) {
    headers['Content-Type'] = 'text/plain; charset=utf-8';
    body = opts.text;
  }
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      body,
      signal: opts.signal,
      credentials: 'same-origin',
      cache: 'no-store',
    });
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', 'mediad cannot be reached.');
  }
  if (res.status === 204) return undefined as T;
  let data: unknown = null;
  const text = await res.text();
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = null;
    }
  }
  if (!res.ok) {
    const error = errorFromBody(res.status, data);
    if (res.status === 401 && !opts.quiet401) onUnauthorized?.(error);
    throw error;
  }
  return data as T;
}

const id = (jobId: string) => encodeURIComponent(jobId);

export const api = {
  list: (filter: Filter, cursor?: string | null, signal?: AbortSignal) =>
    request<JobPage>('GET', listPath(filter, cursor), { signal }),
  get: (jobId: string) => request<Job>('GET', `/downloads/${id(jobId)}`),
  create: (body: NewDownload) => request<Created>('POST', '/downloads', { body }),
  act: (jobId: string, action: Action) => request<Job>('POST', `/downloads/${id(jobId)}/${action}`),
  remove: (jobId: string) => request<void>('DELETE', `/downloads/${id(jobId)}`),
  files: (jobId: string) => request<FileList>('GET', `/files/${id(jobId)}`),
  detect: (url: string, signal?: AbortSignal) =>
    request<Detection>('GET', `/detect?url=${encodeURIComponent(url)}`, { signal }),
  subscriptions: () => request<SubscriptionList>('GET', '/subscriptions'),
  createSubscription: (body: NewSubscription) => request<Subscription>('POST', '/subscriptions', { body }),
  updateSubscription: (sid: string, body: SubscriptionPatch) =>
    request<Subscription>('PATCH', `/subscriptions/${id(sid)}`, { body }),
  deleteSubscription: (sid: string) => request<void>('DELETE', `/subscriptions/${id(sid)}`),
  checkSubscription: (sid: string) => request<Subscription>('POST', `/subscriptions/${id(sid)}/check`),
  subscriptionChecks: (sid: string) => request<CheckList>('GET', `/subscriptions/${id(sid)}/checks`),
  cookies: () => request<CookieFileList>('GET', '/cookies'),
  putCookies: (name: string, text: string) =>
    request<CookieFile>('PUT', `/cookies/${encodeURIComponent(name)}`, { text }),
  deleteCookies: (name: string) => request<void>('DELETE', `/cookies/${encodeURIComponent(name)}`),
  deliveries: (cursor?: string | null) =>
    request<DeliveryPage>('GET', `/notifications?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`),
  targets: () => request<TargetList>('GET', '/notifications/targets'),
  testTarget: (name: string) =>
    request<Delivery>('POST', `/notifications/targets/${encodeURIComponent(name)}/test`),
  /** Checks a token without raising the token dialog. */
  checkToken: (token: string) =>
    request<JobPage>('GET', '/downloads?limit=1', { token, quiet401: true }),
};

/** GET /health: its status code and body (a 503 has a body too); null body when unreachable. */
export async function fetchHealth(): Promise<{ status: number; body: Health | null }> {
  try {
    const res = await fetch('/health', { headers: { Accept: 'application/json' }, cache: 'no-store' });
    let body: Health | null = null;
    try {
      body = (await res.json()) as Health;
    } catch {
      body = null;
    }
    return { status: res.status, body };
  } catch {
    return { status: 0, body: null };
  }
}
