// The status tabs and search of the job list, and the GET /downloads query they make. Pure.
import type { Job, Status } from '../api/types';

export type Tab = 'active' | 'queued' | 'completed' | 'failed' | 'all';

export interface TabInfo {
  id: Tab;
  label: string;
  statuses: readonly Status[] | null;
}

export const TABS: readonly TabInfo[] = [
  { id: 'all', label: 'All', statuses: null },
  { id: 'active', label: 'Active', statuses: ['running', 'paused'] },
  { id: 'queued', label: 'Queued', statuses: ['queued'] },
  { id: 'completed', label: 'Completed', statuses: ['completed'] },
  { id: 'failed', label: 'Failed', statuses: ['failed'] },
];

export interface Filter {
  tab: Tab;
  /** The search text as typed (trimmed and capped when sent). */
  q: string;
}

export const PAGE_SIZE = 50;
export const MAX_Q = 200;

export function tabInfo(tab: Tab): TabInfo {
  return TABS.find((t) => t.id === tab) ?? TABS[0]!;
}

export function normalizedQ(q: string): string {
  return q.trim().slice(0, MAX_Q);
}

/** The path and query of GET /downloads for a filter (and a cursor for the next page). */
export function listPath(filter: Filter, cursor?: string | null, limit = PAGE_SIZE): string {
  const params = new URLSearchParams();
  const statuses = tabInfo(filter.tab).statuses;
  if (statuses) params.set('status', statuses.join(','));
  const q = normalizedQ(filter.q);
  if (q) params.set('q', q);
  params.set('limit', String(limit));
  if (cursor) params.set('cursor', cursor);
  return `/downloads?${params.toString()}`;
}

/** Whether a job belongs in the list under this filter (the server's rule, on the client). */
export function matchesFilter(job: Job, filter: Filter): boolean {
  const statuses = tabInfo(filter.tab).statuses;
  if (statuses && !statuses.includes(job.status)) return false;
  const q = normalizedQ(filter.q).toLowerCase();
  if (!q) return true;
  return (
    job.url.toLowerCase().includes(q) || (job.filename ?? '').toLowerCase().includes(q)
  );
}

export function sameFilter(a: Filter, b: Filter): boolean {
  return a.tab === b.tab && normalizedQ(a.q) === normalizedQ(b.q);
}
