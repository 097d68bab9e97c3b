// Human units for sizes, speeds, durations and percentages. Pure.

const UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'] as const;

function isCount(n: number | null | undefined): n is number {
  return typeof n === 'number' && Number.isFinite(n) && n >= 0;
}

/** 0 → "0 B", 1234 → "1.2 kB", 1234567 → "1.2 MB", 123456789 → "123 MB" (SI, base 1000). */
export function formatBytes(n: number | null | undefined): string {
  if (!isCount(n)) return '';
  if (n < 1000) return `${Math.round(n)} B`;
  let value = n;
  let unit = 0;
  while (value >= 1000 && unit < UNITS.length - 1) {
    value /= 1000;
    unit += 1;
  }
  // One decimal below 100, none above; rounding may carry into the next unit.
  let text = value < 100 ? value.toFixed(1) : Math.round(value).toString();
  if (Number(text) >= 1000 && unit < UNITS.length - 1) {
    unit += 1;
    text = (Number(text) / 1000).toFixed(1);
  }
  return `${text} ${UNITS[unit]}`;
}

/** Bytes per second → "1.2 MB/s"; "" when unknown. */
export function formatSpeed(bytesPerSecond: number | null | undefined): string {
  if (!isCount(bytesPerSecond)) return '';
  return `${formatBytes(bytesPerSecond)}/s`;
}

const pad = (n: number): string => n.toString().padStart(2, '0');

/** Seconds → "45 s", "1 min 05 s", "2 h 03 min", "3 d 04 h"; "" when unknown. */
export function formatDuration(seconds: number | null | undefined): string {
  if (!isCount(seconds)) return '';
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${pad(s % 60)} s`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${pad(Math.floor((s % 3600) / 60))} min`;
  return `${Math.floor(s / 86400)} d ${pad(Math.floor((s % 86400) / 3600))} h`;
}

/** The ETA text of a job: "1 min 05 s left"; "" when unknown. */
export function formatEta(seconds: number | null | undefined): string {
  const d = formatDuration(seconds);
  return d ? `${d} left` : '';
}

/** 45.23 → "45.2%", 100 → "100%", null → "". */
export function formatPercent(p: number | null | undefined): string {
  if (typeof p !== 'number' || !Number.isFinite(p)) return '';
  const clamped = Math.min(100, Math.max(0, p));
  if (clamped === 100 || clamped === 0) return `${clamped}%`;
  const text = clamped.toFixed(1);
  // Never show "100.0%" for a job that is not done.
  return `${text === '100.0' ? '99.9' : text}%`;
}

/** A short local date and time for a timestamp ("" when missing or invalid). */
export function formatTime(iso: string | null | undefined, now: Date = new Date()): string {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const sameDay = d.toDateString() === now.toDateString();
  return sameDay
    ? d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' })
    : d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' }) +
        ' ' +
        d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
}
