// Reading a cookies.txt before it is uploaded: its size, its name, a first look at its
// format (the server checks it the way yt-dlp reads it, and says which line is wrong). Pure.

/** The contract's limit of `PUT /cookies/{name}`. */
export const MAX_COOKIES_BYTES = 1024 * 1024;
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

/** Why a name would be refused ("" when it is fine). */
export function nameProblem(name: string): string {
  if (!name) return 'Give the cookies a name.';
  if (!NAME_PATTERN.test(name)) {
    return 'Letters, digits, ".", "_" and "-", up to 64, starting with a letter or digit.';
  }
  return '';
}

/** A name from a file's name: "youtube.com_cookies.txt" → "youtube.com", "cookies.txt" → "cookies". */
export function nameFromFile(fileName: string): string {
  let base = fileName.replace(/^.*[\\/]/, '').replace(/\.txt$/i, '');
  base = base.replace(/[_-]?cookies$/i, '') || 'cookies';
  const clean = base.replace(/[^A-Za-z0-9._-]+/g, '-').replace(/^[._-]+/, '');
  return clean.slice(0, 64) || 'cookies';
}

/**
 * The text to upload: a byte order mark dropped (yt-dlp would read it into the first
 * line), nothing else changed. `error` when it cannot be a cookies.txt at all.
 */
export function cookiesText(text: string): { text: string; entries: number } | { error: string } {
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  if (!body.trim()) return { error: 'The cookies file is empty.' };
  const bytes = new TextEncoder().encode(body).length;
  if (bytes > MAX_COOKIES_BYTES) return { error: 'The cookies file is larger than 1 MiB.' };
  let entries = 0;
  for (const raw of body.split(/\r?\n/)) {
    const line = raw.startsWith('#HttpOnly_') ? raw.slice('#HttpOnly_'.length) : raw;
    if (!line.trim() || line.startsWith('#')) continue;
    if (line.split('\t').length === 7) entries += 1;
  }
  if (entries === 0) {
    return {
      error:
        'This does not look like a Netscape cookies.txt (lines of 7 tab-separated fields). Export it with a "cookies.txt" browser extension.',
    };
  }
  return { text: body, entries };
}

/** Reads a chosen file (a File or anything with size and text()), refusing one too large to send. */
export async function readCookiesFile(file: {
  size: number;
  text: () => Promise<string>;
}): Promise<{ text: string; entries: number } | { error: string }> {
  if (file.size > MAX_COOKIES_BYTES) return { error: 'The cookies file is larger than 1 MiB.' };
  return cookiesText(await file.text());
}
