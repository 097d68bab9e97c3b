import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './App';
import './index.css';
import { sharedUrl, withoutShareParams } from './lib/share';
import { applyTheme, currentTheme } from './lib/theme';

applyTheme(currentTheme());

// The share target and the bookmarklet open /?url=… (or ?text=/?title= with a URL inside):
// the URL goes into the field, and the query leaves the address bar.
const initialUrl = sharedUrl(location.search) ?? '';
if (/[?&](url|text|title)=/.test(location.search)) {
  history.replaceState(history.state, '', withoutShareParams(location.pathname, location.search, location.hash));
}

createRoot(document.getElementById('root')!).render(
  <StrictMode>
    <App initialUrl={initialUrl} />
  </StrictMode>,
);
