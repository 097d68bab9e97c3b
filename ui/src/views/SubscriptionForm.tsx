import { useId, useState, type FormEvent } from 'react';
import { api, ApiError } from '../api/client';
import type { NewSubscription } from '../api/types';
import { useDebounced } from '../app/hooks';
import { subscriptions, toasts } from '../app/services';
import { TypeBadge } from '../components/Badges';
import { ensureDetection, looksLikeUrl, useDetections } from '../components/detect';
import { CookiesField, NotifyField, useExtras } from '../components/ExtraOptions';
import { TwitterOptions, YtdlpOptions } from '../components/OptionFields';
import { INTERVAL_CHOICES, intervalSeconds, type IntervalId } from '../lib/interval';
import { upsertSubscription } from '../lib/lists';
import { buildOptions, DEFAULT_OPTIONS, type OptionErrors, type OptionField, type OptionsState } from '../lib/options';
import { FormError } from './parts';

// The option names a subscription's jobs take, per type (the contract's, without
// `playlist` and `maxItems`: the subscription lists the entries itself).
const ACCEPTS = {
  ytdlp: ['format', 'audioOnly', 'audioFormat', 'subtitles'],
  twitter: ['mediaType', 'includeRetweets', 'maxTweets'],
} as const;

export function SubscriptionForm() {
  const id = useId();
  const [url, setUrl] = useState('');
  const [interval, setInterval] = useState<IntervalId>('daily');
  const [minutes, setMinutes] = useState('');
  const [maxItems, setMaxItems] = useState('');
  const [backfill, setBackfill] = useState(false);
  const [options, setOptions] = useState<OptionsState>(DEFAULT_OPTIONS);
  const [errors, setErrors] = useState<OptionErrors & { url?: string; minutes?: string; maxItems?: string }>({});
  const [serverError, setServerError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const extras = useExtras();

  const trimmed = url.trim();
  const debounced = useDebounced(looksLikeUrl(trimmed) ? trimmed : '', 350);
  const detect = useDetections(debounced ? [debounced] : []);
  const found = debounced ? detect(debounced) : undefined;
  const detection = found?.state === 'ok' ? found.detection : null;
  const twitter = detection?.type === 'twitter' && detection.twitter?.kind === 'user';
  const type = twitter ? 'twitter' : 'ytdlp';

  const set = <K extends OptionField>(key: K, value: OptionsState[K]) => {
    setOptions((o) => ({ ...o, [key]: value }));
    setErrors((e) => ({ ...e, [key]: undefined }));
    setServerError(null);
  };

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    if (busy) return;
    const next: typeof errors = {};
    if (!looksLikeUrl(trimmed)) next.url = 'Paste the address of a channel, a playlist or a profile (http:// or https://).';
    const every = intervalSeconds(interval, minutes);
    if ('error' in every) next.minutes = every.error;
    let max: number | undefined;
    if (maxItems.trim()) {
      max = /^\d{1,4}$/.test(maxItems.trim()) ? Number(maxItems.trim()) : NaN;
      if (!(max >= 1 && max <= 1000)) next.maxItems = 'Max items must be a whole number from 1 to 1000.';
    }
    const d = looksLikeUrl(trimmed) ? await ensureDetection(trimmed) : null;
    const kind = d?.type === 'twitter' && d.twitter?.kind === 'user' ? 'twitter' : 'ytdlp';
    const built = buildOptions(kind, options, ACCEPTS[kind], kind === 'twitter' ? 'user' : null);
    Object.assign(next, built.errors);
    setErrors(next);
    if (Object.values(next).some(Boolean) || 'error' in every) return;
    const body: NewSubscription = { url: trimmed, intervalS: every.seconds, backfill };
    if (kind === 'twitter') body.type = 'twitter';
    if (max !== undefined) body.maxItems = max;
    if (Object.keys(built.options).length) body.options = built.options as NewSubscription['options'];
    setBusy(true);
    setServerError(null);
    try {
      const sub = await api.createSubscription(body);
      subscriptions.update((l) => upsertSubscription(l, sub));
      toasts.show({ kind: 'success', title: 'Subscribed', message: `${sub.url} — the first check runs soon.` });
      setUrl('');
      setOptions(DEFAULT_OPTIONS);
    } catch (err) {
      if (err instanceof ApiError && err.status === 401) return;
      setServerError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <form onSubmit={submit} noValidate className="card space-y-4 p-4 sm:p-5" aria-label="New subscription">
      <div>
        <label htmlFor={`${id}-url`} className="mb-1.5 block text-sm font-semibold">
          Subscription URL
        </label>
        <input
          id={`${id}-url`}
          type="url"
          inputMode="url"
          autoComplete="off"
          spellCheck={false}
          className="field font-mono text-[0.8125rem]"
          placeholder="A channel, a playlist, a feed or a Twitter/X profile"
          value={url}
          onChange={(e) => {
            setUrl(e.target.value);
            setErrors((x) => ({ ...x, url: undefined }));
            setServerError(null);
          }}
          aria-invalid={errors.url ? true : undefined}
          aria-describedby={errors.url ? `${id}-url-error` : undefined}
        />
        <FormError id={`${id}-url-error`} text={errors.url ?? null} />
        {detection && (
          <p className="mt-1.5 flex items-center gap-2 text-xs text-zinc-500">
            <TypeBadge type={type} twitter={twitter ? detection.twitter : null} />
            {type === 'ytdlp' ? 'its entries through yt-dlp' : 'its tweets through twmd'}
          </p>
        )}
      </div>
      <div className="grid grid-cols-1 gap-3 sm:grid-cols-3">
        <div>
          <label htmlFor={`${id}-interval`} className="label">
            Check
          </label>
          <select id={`${id}-interval`} className="field" value={interval} onChange={(e) => setInterval(e.target.value as IntervalId)}>
            {INTERVAL_CHOICES.map((c) => (
              <option key={c.id} value={c.id}>
                {c.label}
              </option>
            ))}
            <option value="minutes">Every … minutes</option>
          </select>
        </div>
        {interval === 'minutes' && (
          <div>
            <label htmlFor={`${id}-minutes`} className="label">
              Minutes
            </label>
            <input
              id={`${id}-minutes`}
              type="number"
              inputMode="numeric"
              min={1}
              className="field"
              placeholder="90"
              value={minutes}
              onChange={(e) => setMinutes(e.target.value)}
              aria-invalid={errors.minutes ? true : undefined}
              aria-describedby={errors.minutes ? `${id}-minutes-error` : undefined}
            />
            <FormError id={`${id}-minutes-error`} text={errors.minutes ?? null} />
          </div>
        )}
        <div>
          <label htmlFor={`${id}-max`} className="label">
            Max items
          </label>
          <input
            id={`${id}-max`}
            type="number"
            inputMode="numeric"
            min={1}
            max={1000}
            className="field"
            placeholder="100"
            value={maxItems}
            onChange={(e) => setMaxItems(e.target.value)}
            aria-invalid={errors.maxItems ? true : undefined}
            aria-describedby={errors.maxItems ? `${id}-max-error` : undefined}
          />
          <FormError id={`${id}-max-error`} text={errors.maxItems ?? null} />
        </div>
      </div>
      <div className="flex flex-wrap items-center gap-x-2">
        <label htmlFor={`${id}-backfill`} className="flex min-h-9 cursor-pointer items-center gap-2 text-sm">
          <input
            id={`${id}-backfill`}
            type="checkbox"
            checked={backfill}
            onChange={(e) => setBackfill(e.target.checked)}
            aria-describedby={`${id}-backfill-hint`}
            className="size-4 rounded border-zinc-300 accent-indigo-600 dark:border-zinc-600"
          />
          Download existing items
        </label>
        <span id={`${id}-backfill-hint`} className="text-xs text-zinc-500">
          (else only the entries that come after the first check)
        </span>
      </div>
      <div className="space-y-4 border-t border-zinc-200 pt-4 dark:border-zinc-800">
        {type === 'ytdlp' ? (
          <YtdlpOptions id={id} options={options} errors={errors} set={set} playlist={false} />
        ) : (
          <TwitterOptions id={id} options={options} errors={errors} set={set} />
        )}
        {(extras.cookieNames.length > 0 || extras.jobTargets.length > 0) && (
          <div className="grid grid-cols-1 gap-3 sm:grid-cols-3">
            {extras.cookieNames.length > 0 && (
              <CookiesField id={id} names={extras.cookieNames} value={options.cookies} onChange={(v) => set('cookies', v)} />
            )}
            {extras.jobTargets.length > 0 && (
              <div className="sm:col-span-2">
                <NotifyField id={id} targets={extras.jobTargets} value={options.notify} onChange={(v) => set('notify', v)} />
              </div>
            )}
          </div>
        )}
      </div>
      <FormError id={`${id}-error`} text={serverError} />
      <button type="submit" className="btn-primary min-h-11 px-5" disabled={busy}>
        Subscribe
      </button>
    </form>
  );
}
