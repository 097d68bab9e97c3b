// GET /detect for what is typed in the URL field: cached, debounced by the caller.
import { useEffect, useReducer } from 'react';
import { api, ApiError } from '../api/client';
import type { Detection } from '../api/types';

export type DetectState =
  | { state: 'loading' }
  | { state: 'ok'; detection: Detection }
  | { state: 'error'; code: string; message: string };

const cache = new Map<string, DetectState>();
const MAX_CACHE = 300;
const MAX_LINES = 10;

/** Only strings that look like a web address are worth asking about. */
export function looksLikeUrl(text: string): boolean {
  return /^https?:\/\/[^\s/?#]+/i.test(text) && text.length <= 2048;
}

function remember(url: string, state: DetectState): void {
  if (cache.size >= MAX_CACHE) {
    const first = cache.keys().next().value;
    if (first !== undefined) cache.delete(first);
  }
  cache.set(url, state);
}

async function run(url: string, signal?: AbortSignal): Promise<DetectState> {
  try {
    const detection = await api.detect(url, signal);
    return { state: 'ok', detection };
  } catch (e) {
    if (e instanceof DOMException && e.name === 'AbortError') throw e;
    if (e instanceof ApiError) return { state: 'error', code: e.code, message: e.message };
    return { state: 'error', code: 'error', message: String(e) };
  }
}

/** The detection of a URL, asked now if not known yet (for the submit). */
export async function ensureDetection(url: string): Promise<Detection | null> {
  const known = cache.get(url);
  if (known?.state === 'ok') return known.detection;
  if (known?.state === 'error') return null;
  if (!looksLikeUrl(url)) return null;
  const state = await run(url);
  remember(url, state);
  return state.state === 'ok' ? state.detection : null;
}

export function detectionOf(url: string): DetectState | undefined {
  return cache.get(url);
}

/** Detections of the first lines of `urls` (a debounced list), fetched as needed. */
export function useDetections(urls: readonly string[]): (url: string) => DetectState | undefined {
  const [, rerender] = useReducer((n: number) => n + 1, 0);
  const key = urls.slice(0, MAX_LINES).filter(looksLikeUrl).join('\n');
  useEffect(() => {
    if (!key) return;
    const ctrl = new AbortController();
    const asked: string[] = [];
    for (const url of key.split('\n')) {
      if (cache.has(url)) continue;
      asked.push(url);
      cache.set(url, { state: 'loading' });
      run(url, ctrl.signal).then(
        (state) => {
          remember(url, state);
          rerender();
        },
        () => undefined,
      );
    }
    if (asked.length) rerender();
    return () => {
      ctrl.abort();
      for (const url of asked) if (cache.get(url)?.state === 'loading') cache.delete(url);
    };
  }, [key]);
  return detectionOf;
}
