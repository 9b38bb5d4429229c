// Tailwind CSS 3 configuration. The content globs list every file that
// contains class names: templ sources, the Go code templ generates from them,
// and Go code in the web layer.
/** @type {import('tailwindcss').Config} */
module.exports = {
  content: [
    "./views/**/*.templ",
    "./views/**/*_templ.go",
    "./views/**/*.go",
    "./app/web/**/*.go",
    "./static/js/app.js",
  ],
  theme: {
    extend: {},
  },
  plugins: [],
};
