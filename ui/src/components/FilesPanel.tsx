import { useState } from 'react';
import type { FileEntry } from '../api/types';
import { useFiles, useOnceVisible } from '../app/hooks';
import { files } from '../app/services';
import { formatBytes } from '../lib/format';
import { IconArchive, IconFile, IconPlay, IconX } from './icons';

export function mediaKind(mimeType: string): 'video' | 'audio' | null {
  if (mimeType.startsWith('video/')) return 'video';
  if (mimeType.startsWith('audio/')) return 'audio';
  return null;
}

/** A completed job's files: links (the server's own URLs), the zip, and a player. */
export function FilesPanel({ jobId }: { jobId: string }) {
  const state = useFiles(jobId);
  const ref = useOnceVisible<HTMLDivElement>(() => void files.load(jobId));
  const [playing, setPlaying] = useState<string | null>(null);

  let body;
  if (!state || state.state === 'loading') {
    body = <p className="text-xs text-zinc-500">Listing files…</p>;
  } else if (state.state === 'error') {
    body = (
      <p className="flex flex-wrap items-center gap-2 text-xs text-red-600 dark:text-red-400">
        {state.message}
        <button
          type="button"
          className="font-medium text-indigo-600 hover:underline dark:text-indigo-400"
          onClick={() => void files.load(jobId, true)}
        >
          List again
        </button>
      </p>
    );
  } else {
    const { list } = state;
    const current = list.files.find((f) => f.name === playing);
    body = (
      <>
        {list.files.length === 0 && <p className="text-xs text-zinc-500">No files.</p>}
        <div className="divide-y divide-zinc-200 dark:divide-zinc-800">
          {list.files.map((f) => (
            <FileLine
              key={f.name}
              file={f}
              playing={playing === f.name}
              onPlay={() => setPlaying(playing === f.name ? null : f.name)}
            />
          ))}
        </div>
        {list.zipUrl && (
          <p className="mt-2">
            <a href={list.zipUrl} className="btn-secondary">
              <IconArchive />
              Download all (zip)
              <span className="text-xs font-normal text-zinc-500">{formatBytes(list.totalSize)}</span>
            </a>
          </p>
        )}
        {current && <Player file={current} />}
      </>
    );
  }

  return (
    <div ref={ref} role="group" aria-label="Files" className="mt-3 rounded-xl bg-zinc-50 p-3 dark:bg-zinc-950/50">
      {body}
    </div>
  );
}

function FileLine({ file, playing, onPlay }: { file: FileEntry; playing: boolean; onPlay: () => void }) {
  const kind = mediaKind(file.mimeType);
  return (
    <div className="flex min-w-0 items-center gap-2 py-1.5 first:pt-0 last:pb-0">
      <IconFile className="size-4 shrink-0 text-zinc-400" />
      <a
        href={file.url}
        className="min-w-0 flex-1 truncate text-sm font-medium text-indigo-700 hover:underline dark:text-indigo-300"
        title={file.name}
      >
        {file.name}
        <span className="sr-only">, {formatBytes(file.size)}</span>
      </a>
      <span aria-hidden="true" className="shrink-0 text-xs text-zinc-500 tabular-nums">
        {formatBytes(file.size)}
      </span>
      {kind && (
        <button
          type="button"
          className="btn-ghost min-h-8 px-2 py-1 text-xs"
          aria-label={`${playing ? 'Close player for' : 'Play'} ${file.name}`}
          aria-pressed={playing}
          onClick={onPlay}
        >
          {playing ? <IconX /> : <IconPlay />}
          <span aria-hidden="true">{playing ? 'Close' : 'Play'}</span>
        </button>
      )}
    </div>
  );
}

function Player({ file }: { file: FileEntry }) {
  const kind = mediaKind(file.mimeType);
  if (kind === 'video') {
    return (
      <video
        key={file.url}
        controls
        autoPlay
        preload="metadata"
        src={file.url}
        aria-label={file.name}
        className="mt-3 max-h-[60vh] w-full rounded-lg bg-black"
      />
    );
  }
  return (
    <audio key={file.url} controls autoPlay preload="metadata" src={file.url} aria-label={file.name} className="mt-3 w-full" />
  );
}
