import { useEffect, useState } from 'react';
import { fetchHealth } from '../api/client';
import type { Health } from '../api/types';
import { IconAlert } from './icons';

const HEALTH_MS = 20000;

type Report = { status: number; body: Health | null };

/** The parts that are down, with their error when the server gives one. */
export function downParts(body: Health | null): string[] {
  if (!body?.checks) return [];
  return Object.entries(body.checks)
    .filter(([, check]) => check && check.status === 'down')
    .map(([name, check]) => (check.error ? `${name} (${String(check.error)})` : name));
}

export function HealthBar() {
  const [report, setReport] = useState<Report | null>(null);

  useEffect(() => {
    let alive = true;
    const check = () =>
      fetchHealth().then((r) => {
        if (alive) setReport(r);
      });
    void check();
    const timer = setInterval(check, HEALTH_MS);
    const onOnline = () => void check();
    window.addEventListener('online', onOnline);
    return () => {
      alive = false;
      clearInterval(timer);
      window.removeEventListener('online', onOnline);
    };
  }, []);

  if (!report || report.status === 200) return null;
  const down = downParts(report.body);
  const text =
    report.status === 0
      ? 'mediad cannot be reached.'
      : down.length
        ? `mediad is degraded — down: ${down.join(', ')}.`
        : `mediad is degraded (health answered HTTP ${report.status}).`;
  return (
    <div
      role="status"
      aria-label="Service health"
      className="border-b border-amber-300 bg-amber-50 text-amber-900 dark:border-amber-500/30 dark:bg-amber-500/10 dark:text-amber-200"
    >
      <p className="mx-auto flex max-w-5xl items-start gap-2 px-4 py-2 text-sm sm:px-6">
        <IconAlert className="mt-0.5 size-4 shrink-0" />
        <span>
          {text}
          {report.body?.queue?.depth != null && (
            <span className="opacity-75"> {report.body.queue.depth} jobs waiting.</span>
          )}
        </span>
      </p>
    </div>
  );
}
