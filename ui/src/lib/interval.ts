// Subscription intervals as people say them, and "when" texts for checks. Pure.

export interface IntervalChoice {
  id: 'hourly' | '6h' | 'daily' | 'weekly';
  label: string;
  seconds: number;
}

export const INTERVAL_CHOICES: readonly IntervalChoice[] = [
  { id: 'hourly', label: 'Hourly', seconds: 3600 },
  { id: '6h', label: 'Every 6 hours', seconds: 6 * 3600 },
  { id: 'daily', label: 'Daily', seconds: 86400 },
  { id: 'weekly', label: 'Weekly', seconds: 7 * 86400 },
];

/** The contract's bounds of `intervalS` (the server may ask for more: `subscriptions.min_interval_s`). */
export const MIN_INTERVAL_S = 60;
export const MAX_INTERVAL_S = 2_592_000;

export type IntervalId = IntervalChoice['id'] | 'minutes';

/** The choice that names `seconds` exactly, else "minutes". */
export function intervalChoiceFor(seconds: number): IntervalId {
  return INTERVAL_CHOICES.find((c) => c.seconds === seconds)?.id ?? 'minutes';
}

/** Whole minutes typed by a person → seconds, or the sentence that says what is wrong. */
export function parseMinutes(text: string): { seconds: number } | { error: string } {
  const t = text.trim();
  const low = MIN_INTERVAL_S / 60;
  const high = MAX_INTERVAL_S / 60;
  const wrong = { error: `Minutes must be a whole number from ${low} to ${high}.` };
  if (!/^\d{1,6}$/.test(t)) return wrong;
  const n = Number(t);
  return n >= low && n <= high ? { seconds: n * 60 } : wrong;
}

/** The seconds of the form's interval (a choice, or minutes typed). */
export function intervalSeconds(id: IntervalId, minutes: string): { seconds: number } | { error: string } {
  if (id === 'minutes') return parseMinutes(minutes);
  const choice = INTERVAL_CHOICES.find((c) => c.id === id);
  return choice ? { seconds: choice.seconds } : { error: 'Pick an interval.' };
}

const plural = (n: number, one: string, many: string) => `${n} ${n === 1 ? one : many}`;

/** 3600 → "hourly", 21600 → "every 6 hours", 5400 → "every 90 minutes", 172800 → "every 2 days". */
export function formatInterval(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds <= 0) return '';
  if (seconds === 3600) return 'hourly';
  if (seconds === 86400) return 'daily';
  if (seconds === 604800) return 'weekly';
  if (seconds % 604800 === 0) return `every ${plural(seconds / 604800, 'week', 'weeks')}`;
  if (seconds % 86400 === 0) return `every ${plural(seconds / 86400, 'day', 'days')}`;
  if (seconds % 3600 === 0) return `every ${plural(seconds / 3600, 'hour', 'hours')}`;
  if (seconds % 60 === 0) return `every ${plural(seconds / 60, 'minute', 'minutes')}`;
  return `every ${plural(seconds, 'second', 'seconds')}`;
}

/** A timestamp relative to `now`: "just now", "in 5 min", "3 h ago", "in 2 days". "" when missing. */
export function formatRelative(iso: string | null | undefined, now: number = Date.now()): string {
  if (!iso) return '';
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const diff = Math.round((t - now) / 1000);
  const abs = Math.abs(diff);
  if (abs < 45) return diff > 0 ? 'in a moment' : 'just now';
  let text: string;
  if (abs < 3600) text = `${Math.max(1, Math.round(abs / 60))} min`;
  else if (abs < 86400) text = `${Math.round(abs / 3600)} h`;
  else text = plural(Math.round(abs / 86400), 'day', 'days');
  return diff > 0 ? `in ${text}` : `${text} ago`;
}
