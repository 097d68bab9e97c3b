import { describe, expect, it } from 'vitest';
import { bookmarklet, findUrl, sharedUrl, withoutShareParams } from './share';

describe('sharedUrl', () => {
  it('takes ?url= first', () => {
    expect(sharedUrl('?url=https%3A%2F%2Fexample.com%2Fv%3Fa%3D1%26b%3D2')).toBe('https://example.com/v?a=1&b=2');
    expect(sharedUrl('?url=https://a.example/x&text=see https://b.example/y')).toBe('https://a.example/x');
  });

  it('finds a URL inside ?text= (Android shares put it there)', () => {
    expect(sharedUrl('?title=Cool&text=' + encodeURIComponent('Watch this: https://youtu.be/abc123 !'))).toBe(
      'https://youtu.be/abc123',
    );
  });

  it('falls back to ?title=', () => {
    expect(sharedUrl('?title=' + encodeURIComponent('https://x.com/jack/status/20'))).toBe(
      'https://x.com/jack/status/20',
    );
  });

  it('is null when nothing was shared', () => {
    expect(sharedUrl('')).toBeNull();
    expect(sharedUrl('?text=no link here&title=nope')).toBeNull();
    expect(sharedUrl('?url=%20%20')).toBeNull();
  });

  it('hands a url= that is not http(s) to the field as is (the server judges it)', () => {
    expect(sharedUrl('?url=example.com/video')).toBe('example.com/video');
  });
});

describe('findUrl', () => {
  it('drops sentence punctuation after a URL', () => {
    expect(findUrl('see https://example.com/a.mp4.')).toBe('https://example.com/a.mp4');
    expect(findUrl('(https://example.com/page)')).toBe('https://example.com/page');
    expect(findUrl('"https://example.com/q?x=1",')).toBe('https://example.com/q?x=1');
  });

  it('keeps a bracket that belongs to the URL', () => {
    expect(findUrl('https://en.wikipedia.org/wiki/Foo_(bar)')).toBe('https://en.wikipedia.org/wiki/Foo_(bar)');
  });

  it('ignores other schemes', () => {
    expect(findUrl('javascript:alert(1) ftp://x.example/f')).toBeNull();
  });
});

describe('withoutShareParams', () => {
  it('removes only the share parameters', () => {
    expect(withoutShareParams('/', '?url=x&text=y&title=z', '')).toBe('/');
    expect(withoutShareParams('/', '?url=x&keep=1', '#h')).toBe('/?keep=1#h');
  });
});

describe('bookmarklet', () => {
  it('sends the current page to this origin', () => {
    expect(bookmarklet('http://127.0.0.1:8080')).toBe(
      "javascript:location.href='http://127.0.0.1:8080/?url='+encodeURIComponent(location.href)",
    );
  });
  it('cannot be broken out of by the origin', () => {
    expect(bookmarklet("http://evil'+alert(1)+'")).not.toContain("'+alert");
  });
});
