// Applies the theme before the first paint (an external file: the page's CSP allows no
// inline script). The same rule as src/lib/theme.ts.
(function () {
  var theme = null;
  try {
    theme = localStorage.getItem('mediad.theme');
  } catch (e) {}
  if (theme !== 'dark' && theme !== 'light') {
    theme = window.matchMedia && matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
  }
  var root = document.documentElement;
  if (theme === 'dark') root.classList.add('dark');
  root.style.colorScheme = theme;
})();
