import type { JobType, Status, TwitterTarget } from '../api/types';

const TYPE_LABEL: Record<JobType, string> = {
  ytdlp: 'yt-dlp',
  aria2: 'aria2',
  ffmpeg: 'ffmpeg',
  twitter: 'Twitter/X',
};

const TYPE_HINT: Record<JobType, string> = {
  ytdlp: 'A video site, through yt-dlp',
  aria2: 'A direct file, through aria2',
  ffmpeg: 'An HLS or DASH stream, through ffmpeg',
  twitter: 'A tweet or a profile on Twitter/X, through twmd',
};

const TYPE_STYLE: Record<JobType, string> = {
  ytdlp: 'bg-rose-50 text-rose-700 ring-rose-600/20 dark:bg-rose-500/10 dark:text-rose-300 dark:ring-rose-400/30',
  aria2: 'bg-sky-50 text-sky-700 ring-sky-600/20 dark:bg-sky-500/10 dark:text-sky-300 dark:ring-sky-400/30',
  ffmpeg:
    'bg-amber-50 text-amber-800 ring-amber-600/20 dark:bg-amber-500/10 dark:text-amber-300 dark:ring-amber-400/30',
  twitter: 'bg-zinc-900 text-white ring-zinc-900 dark:bg-white dark:text-zinc-900 dark:ring-white',
};

export function typeLabel(type: JobType): string {
  return TYPE_LABEL[type] ?? type;
}

export function TypeBadge({ type, twitter }: { type: JobType; twitter?: TwitterTarget | null }) {
  return (
    <span
      title={TYPE_HINT[type]}
      className={`inline-flex items-center gap-1 rounded-md px-1.5 py-0.5 text-xs font-semibold ring-1 ring-inset ${TYPE_STYLE[type] ?? ''}`}
    >
      {type === 'twitter' && (
        <svg aria-hidden="true" viewBox="0 0 24 24" className="size-3 fill-current">
          <path d="M17.8 3h3.1l-6.8 7.8L22 21h-6.2l-4.9-6.4L5.3 21H2.2l7.3-8.3L2 3h6.3l4.4 5.9zm-1.1 16.2h1.7L7.4 4.7H5.6z" />
        </svg>
      )}
      {TYPE_LABEL[type] ?? type}
      {twitter?.kind === 'tweet' && <span className="font-normal opacity-80">· tweet {twitter.id}</span>}
      {twitter?.kind === 'user' && <span className="font-normal opacity-80">· @{twitter.name}</span>}
    </span>
  );
}

const STATUS_STYLE: Record<Status, string> = {
  queued: 'bg-zinc-100 text-zinc-700 dark:bg-zinc-800 dark:text-zinc-300',
  running: 'bg-indigo-50 text-indigo-700 dark:bg-indigo-500/15 dark:text-indigo-300',
  paused: 'bg-amber-50 text-amber-800 dark:bg-amber-500/15 dark:text-amber-300',
  completed: 'bg-emerald-50 text-emerald-700 dark:bg-emerald-500/15 dark:text-emerald-300',
  failed: 'bg-red-50 text-red-700 dark:bg-red-500/15 dark:text-red-300',
  cancelled: 'bg-zinc-100 text-zinc-500 dark:bg-zinc-800 dark:text-zinc-400',
};

const DOT_STYLE: Record<Status, string> = {
  queued: 'bg-zinc-400',
  running: 'bg-indigo-500 animate-pulse',
  paused: 'bg-amber-500',
  completed: 'bg-emerald-500',
  failed: 'bg-red-500',
  cancelled: 'bg-zinc-400',
};

/** The status as visible text, exactly the API's word. */
export function StatusPill({ status }: { status: Status }) {
  return (
    <span
      className={`inline-flex items-center gap-1.5 rounded-full px-2 py-0.5 text-xs font-medium ${STATUS_STYLE[status] ?? ''}`}
    >
      <span aria-hidden="true" className={`size-1.5 rounded-full ${DOT_STYLE[status] ?? ''}`} />
      <span data-status={status}>{status}</span>
    </span>
  );
}
