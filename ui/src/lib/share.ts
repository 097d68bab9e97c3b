// The share target and the bookmarklet: /?url=…, or a URL inside ?text= / ?title=. Pure.

const URL_IN_TEXT = /https?:\/\/[^\s<>"'`]+/i;
// Punctuation that ends a sentence rather than a URL ("see https://x.y/z.").
const TRAILING = '.,;:!?\'"»”’)]}';
const OPENING: Record<string, string> = { ')': '(', ']': '[', '}': '{' };

function count(text: string, ch: string): number {
  return text.split(ch).length - 1;
}

function cleanUrl(raw: string): string {
  let url = raw;
  while (url && TRAILING.includes(url.at(-1)!)) {
    const last = url.at(-1)!;
    const open = OPENING[last];
    // Keep a closing bracket whose opening one is in the URL (Wikipedia's "Foo_(bar)").
    if (open && count(url, open) >= count(url, last)) break;
    url = url.slice(0, -1);
  }
  return url;
}

/** The first http(s) URL found in free text, or null. */
export function findUrl(text: string | null | undefined): string | null {
  if (!text) return null;
  const m = URL_IN_TEXT.exec(text);
  if (!m) return null;
  const url = cleanUrl(m[0]);
  return /^https?:\/\/[^/\s]+/i.test(url) ? url : null;
}

export const SHARE_PARAMS = ['url', 'text', 'title'] as const;

/**
 * The URL a share (or the bookmarklet) hands the page: `url` when it is given (as is,
 * trimmed: the server judges it), else the first URL in `text`, else in `title`.
 */
export function sharedUrl(search: string | URLSearchParams): string | null {
  const params = typeof search === 'string' ? new URLSearchParams(search) : search;
  const url = params.get('url')?.trim();
  if (url) return findUrl(url) ?? url;
  return findUrl(params.get('text')) ?? findUrl(params.get('title'));
}

/** The location without the share parameters (for history.replaceState). */
export function withoutShareParams(pathname: string, search: string, hash: string): string {
  const params = new URLSearchParams(search);
  for (const p of SHARE_PARAMS) params.delete(p);
  const rest = params.toString();
  return `${pathname}${rest ? `?${rest}` : ''}${hash}`;
}

/** The bookmarklet's code for this origin. */
export function bookmarklet(origin: string): string {
  const safe = origin.replace(/['\\]/g, '');
  return `javascript:location.href='${safe}/?url='+encodeURIComponent(location.href)`;
}
