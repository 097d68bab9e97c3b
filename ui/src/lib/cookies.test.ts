import { describe, expect, it } from 'vitest';
import { cookiesText, MAX_COOKIES_BYTES, nameFromFile, nameProblem, readCookiesFile } from './cookies';

const LINE = '.example.com\tTRUE\t/\tTRUE\t2147483647\tsid\tabc';
const FILE = `# Netscape HTTP Cookie File\n\n${LINE}\n#HttpOnly_.example.com\tTRUE\t/\tTRUE\t0\tk\tv\n`;

describe('cookies files', () => {
  it('counts the entries of a Netscape cookies.txt, HttpOnly ones too', () => {
    expect(cookiesText(FILE)).toEqual({ text: FILE, entries: 2 });
    expect(cookiesText(FILE.replace(/\n/g, '\r\n'))).toMatchObject({ entries: 2 });
  });

  it('drops a byte order mark and nothing else', () => {
    expect(cookiesText(`\uFEFF${FILE}`)).toEqual({ text: FILE, entries: 2 });
  });

  it('refuses what cannot be a cookies.txt', () => {
    expect(cookiesText('')).toHaveProperty('error');
    expect(cookiesText('  \n')).toHaveProperty('error');
    expect(cookiesText('# only comments\n')).toHaveProperty('error');
    expect(cookiesText('[{"name": "sid", "value": "abc"}]')).toHaveProperty('error');
    expect(cookiesText('a b c d e f g')).toHaveProperty('error');
  });

  it('refuses a file over 1 MiB before reading it', async () => {
    let read = false;
    const big = { size: MAX_COOKIES_BYTES + 1, text: async () => ((read = true), FILE) };
    expect(await readCookiesFile(big)).toHaveProperty('error');
    expect(read).toBe(false);
    expect(await readCookiesFile({ size: FILE.length, text: async () => FILE })).toEqual({ text: FILE, entries: 2 });
  });

  it('refuses pasted text over 1 MiB', () => {
    expect(cookiesText(`${LINE}\n`.repeat(Math.ceil(MAX_COOKIES_BYTES / LINE.length)))).toHaveProperty('error');
  });

  it('makes a name from a file name', () => {
    expect(nameFromFile('youtube.com_cookies.txt')).toBe('youtube.com');
    expect(nameFromFile('cookies.txt')).toBe('cookies');
    expect(nameFromFile('C:\\fakepath\\x-cookies.txt')).toBe('x');
    expect(nameFromFile('my cookies (1).txt')).toBe('my-cookies-1-');
    expect(nameFromFile('.hidden.txt')).toBe('hidden');
    expect(nameProblem(nameFromFile('a'.repeat(100) + '.txt'))).toBe('');
  });

  it('checks names as the server does', () => {
    expect(nameProblem('youtube')).toBe('');
    expect(nameProblem('a.b_c-d')).toBe('');
    expect(nameProblem('')).not.toBe('');
    expect(nameProblem('.x')).not.toBe('');
    expect(nameProblem('a/b')).not.toBe('');
    expect(nameProblem('a'.repeat(65))).not.toBe('');
  });
});
