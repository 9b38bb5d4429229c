// Tailwind CSS 3 configuration. The content globs list every file that
// contains class names: templ sources, the Go code templ generates from them,
// Go code in the web layer, and the provider catalog (the logos' colours).
/** @type {import('tailwindcss').Config} */
module.exports = {
  content: [
    "./views/**/*.templ",
    "./views/**/*_templ.go",
    "./views/**/*.go",
    "./app/web/**/*.go",
    "./app/catalog.go",
    "./static/js/app.js",
  ],
  theme: {
    extend: {},
  },
  plugins: [],
};
