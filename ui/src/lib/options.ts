// The submit form's options and the POST /downloads bodies they make. Pure.
import type { Detection, JobType, NewDownload } from '../api/types';

export const FORMAT_PRESETS = ['best', '1080p', '720p', '480p', 'audio'] as const;
export const AUDIO_FORMATS = ['mp3', 'm4a', 'opus', 'flac', 'wav'] as const;
export const CONTAINERS = ['mp4', 'mkv'] as const;
export const MEDIA_TYPES = ['all', 'images', 'videos'] as const;

/** What the form holds. Empty strings and false mean "not changed": nothing is sent. */
export interface OptionsState {
  format: '' | (typeof FORMAT_PRESETS)[number] | 'custom';
  customFormat: string;
  audioOnly: boolean;
  audioFormat: '' | (typeof AUDIO_FORMATS)[number];
  playlist: boolean;
  maxItems: string;
  subtitles: string;
  container: '' | (typeof CONTAINERS)[number];
  mediaType: '' | (typeof MEDIA_TYPES)[number];
  includeRetweets: boolean;
  maxTweets: string;
  /** A stored cookie file's name (yt-dlp and Twitter/X jobs); "" for none. */
  cookies: string;
  /** The notification targets chosen; null for the configured defaults (nothing sent). */
  notify: string[] | null;
}

export const DEFAULT_OPTIONS: OptionsState = {
  format: '',
  customFormat: '',
  audioOnly: false,
  audioFormat: '',
  playlist: false,
  maxItems: '',
  subtitles: '',
  container: '',
  mediaType: '',
  includeRetweets: false,
  maxTweets: '',
  cookies: '',
  notify: null,
};

export type OptionField = keyof OptionsState;
export type OptionErrors = Partial<Record<OptionField, string>>;
type Options = Record<string, unknown>;

/** The URLs of the URL field: one a line, trimmed, blank lines and repeats dropped. */
export function parseUrls(text: string): string[] {
  const seen = new Set<string>();
  for (const line of text.split(/\r?\n/)) {
    const url = line.trim();
    if (url) seen.add(url);
  }
  return [...seen];
}

/**
 * What the URL box holds once a submit ends. While the jobs were being created the box stayed
 * editable: if it still holds what was sent, what is left is the URLs that were not created (to
 * fix and send again); if someone typed or pasted meanwhile, their text is kept as they left it,
 * without the lines that were created.
 */
export function textAfterSubmit(sent: string, current: string, created: ReadonlySet<string>): string {
  if (current === sent) return parseUrls(sent).filter((u) => !created.has(u)).join('\n');
  return current
    .split(/\r?\n/)
    .filter((line) => !created.has(line.trim()))
    .join('\n');
}

function wholeNumber(text: string, low: number, high: number): number | null {
  const t = text.trim();
  if (!/^\d{1,7}$/.test(t)) return null;
  const n = Number(t);
  return n >= low && n <= high ? n : null;
}

/** Subtitle languages from "en, pt-BR" (commas or spaces). */
export function parseLanguages(text: string): string[] {
  return [...new Set(text.split(/[,\s]+/).map((s) => s.trim()).filter(Boolean))];
}

/** Which of the form's groups apply to a detection. */
export function optionGroups(detection: Detection | null | undefined): {
  ytdlp: boolean;
  ffmpeg: boolean;
  twitterProfile: boolean;
} {
  const accepts = new Set(detection?.options ?? []);
  return {
    ytdlp: detection?.type === 'ytdlp' && accepts.size > 0,
    ffmpeg: detection?.type === 'ffmpeg' && accepts.has('container'),
    twitterProfile: detection?.type === 'twitter' && detection.twitter?.kind === 'user',
  };
}

/**
 * The options for one job of this type: only what the person changed, only the names the
 * server said the type accepts (`accepts`, from /detect), with the form's values checked.
 */
export function buildOptions(
  type: JobType,
  state: OptionsState,
  accepts: readonly string[],
  twitterKind: 'tweet' | 'user' | null = null,
): { options: Options; errors: OptionErrors } {
  const options: Options = {};
  const errors: OptionErrors = {};
  if (type === 'ytdlp') {
    if (state.format === 'custom') {
      const selector = state.customFormat.trim();
      if (selector) options.format = selector;
      else errors.customFormat = 'Type a yt-dlp format selector, or pick a preset.';
    } else if (state.format) {
      options.format = state.format;
    }
    if (state.audioOnly) {
      options.audioOnly = true;
      if (state.audioFormat) options.audioFormat = state.audioFormat;
    }
    if (state.playlist) {
      options.playlist = true;
      if (state.maxItems.trim()) {
        const n = wholeNumber(state.maxItems, 1, 1000);
        if (n === null) errors.maxItems = 'Max items must be a whole number from 1 to 1000.';
        else options.maxItems = n;
      }
    }
    const langs = parseLanguages(state.subtitles);
    if (langs.length > 20) errors.subtitles = 'At most 20 subtitle languages.';
    else if (langs.length) options.subtitles = langs;
  } else if (type === 'ffmpeg') {
    if (state.container) options.container = state.container;
  } else if (type === 'twitter' && twitterKind === 'user') {
    if (state.mediaType) options.mediaType = state.mediaType;
    if (state.includeRetweets) options.includeRetweets = true;
    if (state.maxTweets.trim()) {
      const n = wholeNumber(state.maxTweets, 1, 3000);
      if (n === null) errors.maxTweets = 'Max tweets must be a whole number from 1 to 3000.';
      else options.maxTweets = n;
    }
  }
  const allowed = new Set(accepts);
  for (const key of Object.keys(options)) if (!allowed.has(key)) delete options[key];
  // Offered only when the server has the routes that list them (a newer server): sent as chosen.
  if (state.cookies && (type === 'ytdlp' || type === 'twitter')) options.cookies = state.cookies;
  if (state.notify !== null) options.notify = state.notify;
  return { options, errors };
}

/** The POST /downloads body for one URL, given what /detect said about it (if anything). */
export function buildBody(
  url: string,
  detection: Detection | null | undefined,
  state: OptionsState,
): { body: NewDownload; errors: OptionErrors } {
  if (!detection) return { body: { url }, errors: {} };
  const { options, errors } = buildOptions(
    detection.type,
    state,
    detection.options,
    detection.twitter?.kind ?? null,
  );
  const body: NewDownload = { url };
  if (Object.keys(options).length) body.options = options as NewDownload['options'];
  return { body, errors };
}
