import { useId, useRef, useState, type FormEvent, type KeyboardEvent, type RefObject } from 'react';
import { api, ApiError } from '../api/client';
import type { Created, Detection, Job } from '../api/types';
import { useDebounced } from '../app/hooks';
import { store, sync } from '../app/services';
import {
  buildBody,
  DEFAULT_OPTIONS,
  optionGroups,
  parseUrls,
  textAfterSubmit,
  type OptionErrors,
  type OptionField,
  type OptionsState,
} from '../lib/options';
import { TypeBadge } from './Badges';
import { CookiesField, NotifyField, useExtras } from './ExtraOptions';
import { ensureDetection, looksLikeUrl, useDetections, type DetectState } from './detect';
import { IconAlert, IconDownload } from './icons';
import { FfmpegOptions, TwitterOptions, YtdlpOptions } from './OptionFields';

interface Props {
  initialUrl: string;
  urlRef: RefObject<HTMLTextAreaElement | null>;
  /** New jobs were created (the page may switch to a tab that shows them). */
  onCreated: (jobs: Job[]) => void;
}

/** The job the page shows at once, until GET /downloads/{id} brings the real one. */
function provisionalJob(created: Created, url: string): Job {
  const now = new Date().toISOString();
  return {
    jobId: created.jobId,
    url,
    type: created.type,
    status: created.status,
    stage: null,
    progress: null,
    speed: null,
    eta: null,
    totalBytes: null,
    filename: null,
    size: null,
    outputPath: null,
    errorCode: null,
    errorMessage: null,
    attempts: 0,
    options: {},
    createdAt: now,
    updatedAt: now,
    startedAt: null,
    finishedAt: null,
    instanceId: null,
    subscriptionId: null,
  };
}

export function SubmitForm({ initialUrl, urlRef, onCreated }: Props) {
  const id = useId();
  const [text, setText] = useState(initialUrl);
  const [options, setOptions] = useState<OptionsState>(DEFAULT_OPTIONS);
  const [urlError, setUrlError] = useState<string[] | null>(null);
  const [optionErrors, setOptionErrors] = useState<OptionErrors>({});
  const [optionsServerError, setOptionsServerError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const optionsRef = useRef<HTMLDivElement>(null);

  const urls = parseUrls(text);
  const debounced = useDebounced(urls.join('\n'), 350);
  const detect = useDetections(debounced ? debounced.split('\n') : []);
  const shown = urls.slice(0, 10);
  const detections = shown
    .map((u) => detect(u))
    .flatMap((d) => (d?.state === 'ok' ? [d.detection] : []));
  const groups = detections.reduce(
    (acc, d) => {
      const g = optionGroups(d);
      return {
        ytdlp: acc.ytdlp || g.ytdlp,
        ffmpeg: acc.ffmpeg || g.ffmpeg,
        twitterProfile: acc.twitterProfile || g.twitterProfile,
      };
    },
    { ytdlp: false, ffmpeg: false, twitterProfile: false },
  );
  const changed = JSON.stringify(options) !== JSON.stringify(DEFAULT_OPTIONS);
  const extras = useExtras();
  const showCookies =
    extras.cookieNames.length > 0 && detections.some((d) => d.type === 'ytdlp' || d.type === 'twitter');
  const showNotify = extras.jobTargets.length > 0 && detections.length > 0;

  const setOption = <K extends OptionField>(key: K, value: OptionsState[K]) => {
    setOptions((o) => ({ ...o, [key]: value }));
    setOptionErrors((e) => {
      if (!e[key]) return e;
      const next = { ...e };
      delete next[key];
      return next;
    });
    setOptionsServerError(null);
  };

  const submit = async (e?: FormEvent) => {
    e?.preventDefault();
    if (busy) return;
    const list = parseUrls(text);
    if (!list.length) {
      setUrlError(['Paste a URL first.']);
      urlRef.current?.focus();
      return;
    }
    setBusy(true);
    setUrlError(null);
    setOptionsServerError(null);
    try {
      const found = await Promise.all(list.map((u) => ensureDetection(u)));
      const bodies = list.map((u, i) => buildBody(u, found[i], options));
      const errors: OptionErrors = Object.assign({}, ...bodies.map((b) => b.errors));
      setOptionErrors(errors);
      if (Object.keys(errors).length) {
        optionsRef.current?.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus();
        return;
      }
      const failed: { url: string; error: ApiError }[] = [];
      const created: Job[] = [];
      for (const { body } of bodies) {
        try {
          const answer = await api.create(body);
          const job = store.get(answer.jobId) ?? provisionalJob(answer, body.url);
          if (!store.get(answer.jobId)) store.upsert(job, store.now() - 1);
          created.push(job);
          void sync.refreshJob(answer.jobId);
        } catch (err) {
          const error =
            err instanceof ApiError ? err : new ApiError(0, 'error', 'The job could not be created.');
          failed.push({ url: body.url, error });
          if (error.status === 401) break; // the token dialog is up; keep the rest for later
        }
      }
      if (created.length) onCreated(created);
      const createdUrls = new Set(created.map((j) => j.url));
      setText((current) => textAfterSubmit(text, current, createdUrls));
      const optionFailures = failed.filter((f) => f.error.code === 'invalid_options');
      const urlFailures = failed.filter((f) => f.error.code !== 'invalid_options' && f.error.status !== 401);
      if (optionFailures.length) {
        setOptionsServerError(
          optionFailures.map((f) => (list.length > 1 ? `${f.url}: ${f.error.message}` : f.error.message)).join('\n'),
        );
      }
      if (urlFailures.length) {
        setUrlError(
          urlFailures.map((f) => (list.length > 1 ? `${f.url}: ${f.error.message}` : f.error.message)),
        );
        urlRef.current?.focus();
      } else if (!failed.length) {
        urlRef.current?.focus();
      }
    } catch (err) {
      setUrlError([err instanceof Error ? err.message : String(err)]);
    } finally {
      setBusy(false);
    }
  };

  const onKeyDown = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      void submit();
    }
  };

  const lines = Math.min(Math.max(text.split('\n').length, 1), 6);
  const errorId = `${id}-url-error`;

  return (
    <form onSubmit={submit} noValidate className="card p-4 sm:p-5" aria-label="New download">
      <label htmlFor={`${id}-url`} className="mb-1.5 block text-sm font-semibold">
        URL
      </label>
      <div className="flex flex-col gap-2 sm:flex-row sm:items-start">
        <textarea
          ref={urlRef}
          id={`${id}-url`}
          name="url"
          rows={lines}
          value={text}
          onChange={(e) => {
            setText(e.target.value);
            if (urlError) setUrlError(null);
          }}
          onKeyDown={onKeyDown}
          placeholder="Paste links, one per line"
          autoComplete="off"
          autoCapitalize="off"
          spellCheck={false}
          inputMode="url"
          aria-invalid={urlError ? true : undefined}
          aria-describedby={urlError ? errorId : undefined}
          className="field min-h-11 resize-none py-2.5 font-mono text-[0.8125rem] leading-6"
        />
        <button type="submit" className="btn-primary min-h-11 px-5 sm:w-auto" disabled={busy}>
          <IconDownload />
          Download
        </button>
      </div>

      {urlError && (
        <div id={errorId} role="alert" className="mt-2 flex gap-2 text-sm text-red-600 dark:text-red-400">
          <IconAlert className="mt-0.5 size-4 shrink-0" />
          <div className="min-w-0 break-words">
            {urlError.map((line, i) => (
              <p key={i}>{line}</p>
            ))}
          </div>
        </div>
      )}

      {shown.length > 0 && (
        <ul aria-label="Detected types" className="mt-3 space-y-1.5">
          {shown.map((u) => (
            <DetectLine key={u} url={u} state={looksLikeUrl(u) ? detect(u) : undefined} many={urls.length > 1} />
          ))}
          {urls.length > shown.length && (
            <li className="text-xs text-zinc-500">and {urls.length - shown.length} more URLs</li>
          )}
        </ul>
      )}

      {(groups.ytdlp || groups.ffmpeg || groups.twitterProfile || showCookies || showNotify) && (
        <div ref={optionsRef} className="mt-4 border-t border-zinc-200 pt-4 dark:border-zinc-800">
          <div className="mb-3 flex items-center justify-between">
            <h2 className="text-sm font-semibold">Options</h2>
            {changed && (
              <button
                type="button"
                className="text-xs font-medium text-indigo-600 hover:underline dark:text-indigo-400"
                onClick={() => {
                  setOptions(DEFAULT_OPTIONS);
                  setOptionErrors({});
                  setOptionsServerError(null);
                }}
              >
                Reset options
              </button>
            )}
          </div>
          <div className="space-y-4">
            {groups.ytdlp && <YtdlpOptions id={id} options={options} errors={optionErrors} set={setOption} />}
            {groups.ffmpeg && <FfmpegOptions id={id} options={options} set={setOption} />}
            {groups.twitterProfile && (
              <TwitterOptions id={id} options={options} errors={optionErrors} set={setOption} />
            )}
            {(showCookies || showNotify) && (
              <div className="grid grid-cols-1 gap-3 sm:grid-cols-2 lg:grid-cols-3">
                {showCookies && (
                  <CookiesField id={id} names={extras.cookieNames} value={options.cookies} onChange={(v) => setOption('cookies', v)} />
                )}
                {showNotify && (
                  <div className="sm:col-span-1 lg:col-span-2">
                    <NotifyField id={id} targets={extras.jobTargets} value={options.notify} onChange={(v) => setOption('notify', v)} />
                  </div>
                )}
              </div>
            )}
          </div>
          {optionsServerError && (
            <p role="alert" className="mt-3 text-sm whitespace-pre-line text-red-600 dark:text-red-400">
              {optionsServerError}
            </p>
          )}
        </div>
      )}
    </form>
  );
}

function DetectLine({ url, state, many }: { url: string; state: DetectState | undefined; many: boolean }) {
  let content;
  if (!state) {
    content = looksLikeUrl(url) ? (
      <span className="text-zinc-500">…</span>
    ) : (
      <span className="text-zinc-500">Not a web address yet (http:// or https://)</span>
    );
  } else if (state.state === 'loading') {
    content = <span className="text-zinc-500">Detecting…</span>;
  } else if (state.state === 'error') {
    content = <span className="text-zinc-500">{state.message}</span>;
  } else {
    content = <Detected detection={state.detection} />;
  }
  return (
    <li className="flex min-w-0 flex-wrap items-center gap-x-2 gap-y-1 text-xs">
      {content}
      {many && <span className="min-w-0 truncate font-mono text-zinc-500">{url}</span>}
    </li>
  );
}

function Detected({ detection }: { detection: Detection }) {
  return (
    <>
      <TypeBadge type={detection.type} twitter={detection.twitter} />
      {detection.type === 'twitter' && detection.twitter?.kind === 'tweet' && (
        <span className="text-zinc-500">every image and video of the tweet</span>
      )}
      {detection.blocked && (
        <span className="inline-flex items-center gap-1 font-medium text-amber-700 dark:text-amber-300">
          <IconAlert className="size-3.5" />
          Blocked: {detection.blocked} — the server will refuse this URL.
        </span>
      )}
    </>
  );
}
