import type { ReactNode } from 'react';
import {
  AUDIO_FORMATS,
  CONTAINERS,
  FORMAT_PRESETS,
  MEDIA_TYPES,
  type OptionErrors,
  type OptionField,
  type OptionsState,
} from '../lib/options';

/** The options of each job type, as form fields. Every field is labelled (screen readers,
 * the browser tests) and says its error beside it. */

type Setter = <K extends OptionField>(key: K, value: OptionsState[K]) => void;

interface OptionsProps {
  id: string;
  options: OptionsState;
  errors: OptionErrors;
  set: Setter;
}

function FieldError({ id, text }: { id: string; text?: string }) {
  if (!text) return null;
  return (
    <p id={id} role="alert" className="mt-1 text-xs text-red-600 dark:text-red-400">
      {text}
    </p>
  );
}

function Check({ id, label, checked, onChange }: { id: string; label: string; checked: boolean; onChange: (v: boolean) => void }) {
  return (
    <label htmlFor={id} className="flex min-h-9 cursor-pointer items-center gap-2 text-sm">
      <input
        id={id}
        type="checkbox"
        checked={checked}
        onChange={(e) => onChange(e.target.checked)}
        className="size-4 rounded border-zinc-300 accent-indigo-600 dark:border-zinc-600"
      />
      {label}
    </label>
  );
}

function Group({ legend, children }: { legend: string; children: ReactNode }) {
  return (
    <fieldset className="min-w-0">
      <legend className="mb-2 text-xs font-semibold tracking-wide text-zinc-500 uppercase">{legend}</legend>
      <div className="grid grid-cols-1 gap-3 sm:grid-cols-2 lg:grid-cols-3">{children}</div>
    </fieldset>
  );
}

function SelectField({
  id,
  label,
  value,
  empty,
  choices,
  describe = (c) => c,
  extra,
  className,
  onChange,
}: {
  id: string;
  label: string;
  value: string;
  /** The text of the "" choice: the server's default. */
  empty: string;
  choices: readonly string[];
  describe?: (choice: string) => string;
  extra?: ReactNode;
  className?: string;
  onChange: (value: string) => void;
}) {
  return (
    <div className={className}>
      <label htmlFor={id} className="label">
        {label}
      </label>
      <select id={id} className="field" value={value} onChange={(e) => onChange(e.target.value)}>
        <option value="">{empty}</option>
        {choices.map((c) => (
          <option key={c} value={c}>
            {describe(c)}
          </option>
        ))}
        {extra}
      </select>
    </div>
  );
}

function InputField({
  id,
  label,
  value,
  placeholder,
  error,
  range,
  mono = false,
  errorBeside = true,
  className,
  onChange,
}: {
  id: string;
  label: string;
  value: string;
  placeholder: string;
  error?: string;
  /** A whole number from min to max. */
  range?: { min: number; max: number };
  mono?: boolean;
  /** false: the caller shows the error (`${id}-error`) elsewhere. */
  errorBeside?: boolean;
  className?: string;
  onChange: (value: string) => void;
}) {
  const kind = range
    ? { type: 'number', inputMode: 'numeric' as const, min: range.min, max: range.max }
    : { spellCheck: false, autoCapitalize: 'off' };
  return (
    <div className={className}>
      <label htmlFor={id} className="label">
        {label}
      </label>
      <input
        id={id}
        className={mono ? 'field font-mono' : 'field'}
        value={value}
        placeholder={placeholder}
        {...kind}
        onChange={(e) => onChange(e.target.value)}
        aria-invalid={error ? true : undefined}
        aria-describedby={error ? `${id}-error` : undefined}
      />
      {errorBeside && <FieldError id={`${id}-error`} text={error} />}
    </div>
  );
}

/** `playlist: false` leaves out Playlist and Max items (a subscription has its own). */
export function YtdlpOptions({ id, options: o, errors, set, playlist = true }: OptionsProps & { playlist?: boolean }) {
  return (
    <Group legend="Video site (yt-dlp)">
      <SelectField
        id={`${id}-format`}
        label="Format"
        value={o.format}
        empty="Default"
        choices={FORMAT_PRESETS}
        describe={(f) => (f === 'audio' ? 'audio (best audio only)' : f)}
        extra={<option value="custom">Custom selector…</option>}
        onChange={(v) => set('format', v as OptionsState['format'])}
      />
      {o.format === 'custom' && (
        <InputField
          id={`${id}-selector`}
          label="Format selector"
          value={o.customFormat}
          placeholder="bv*[height<=720]+ba/b"
          mono
          error={errors.customFormat}
          onChange={(v) => set('customFormat', v)}
        />
      )}
      <InputField
        id={`${id}-subs`}
        label="Subtitles"
        value={o.subtitles}
        placeholder="en, pt-BR"
        error={errors.subtitles}
        onChange={(v) => set('subtitles', v)}
      />
      <div className="flex flex-wrap items-end gap-x-6 gap-y-3 sm:col-span-2 lg:col-span-3">
        <div className="flex items-end gap-3">
          <Check id={`${id}-audio`} label="Audio only" checked={o.audioOnly} onChange={(v) => set('audioOnly', v)} />
          {o.audioOnly && (
            <SelectField
              id={`${id}-audio-format`}
              label="Audio format"
              className="w-36"
              value={o.audioFormat}
              empty="Default"
              choices={AUDIO_FORMATS}
              onChange={(v) => set('audioFormat', v as OptionsState['audioFormat'])}
            />
          )}
        </div>
        {playlist && (<div className="flex items-end gap-3">
          <Check id={`${id}-playlist`} label="Playlist" checked={o.playlist} onChange={(v) => set('playlist', v)} />
          {o.playlist && (
            <InputField
              id={`${id}-max-items`}
              label="Max items"
              className="w-32"
              range={{ min: 1, max: 1000 }}
              placeholder="all"
              value={o.maxItems}
              error={errors.maxItems}
              errorBeside={false}
              onChange={(v) => set('maxItems', v)}
            />
          )}
        </div>)}
      </div>
      {errors.maxItems && (
        <div className="sm:col-span-2 lg:col-span-3">
          <FieldError id={`${id}-max-items-error`} text={errors.maxItems} />
        </div>
      )}
    </Group>
  );
}

export function FfmpegOptions({ id, options: o, set }: Omit<OptionsProps, 'errors'>) {
  return (
    <Group legend="Stream (ffmpeg)">
      <SelectField
        id={`${id}-container`}
        label="Container"
        value={o.container}
        empty="Default (mp4)"
        choices={CONTAINERS}
        onChange={(v) => set('container', v as OptionsState['container'])}
      />
    </Group>
  );
}

export function TwitterOptions({ id, options: o, errors, set }: OptionsProps) {
  return (
    <Group legend="Twitter/X profile">
      <SelectField
        id={`${id}-media`}
        label="Media type"
        value={o.mediaType}
        empty="Default (all)"
        choices={MEDIA_TYPES}
        onChange={(v) => set('mediaType', v as OptionsState['mediaType'])}
      />
      <InputField
        id={`${id}-max-tweets`}
        label="Max tweets"
        range={{ min: 1, max: 3000 }}
        placeholder="no limit"
        value={o.maxTweets}
        error={errors.maxTweets}
        onChange={(v) => set('maxTweets', v)}
      />
      <div className="flex items-end">
        <Check
          id={`${id}-retweets`}
          label="Include retweets"
          checked={o.includeRetweets}
          onChange={(v) => set('includeRetweets', v)}
        />
      </div>
    </Group>
  );
}
