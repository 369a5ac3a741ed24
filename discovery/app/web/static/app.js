// discovery explorer: the only script the pages load. It reloads the page when the archive changes
// while a run is going (the page's <body data-poll> names a URL that returns the archive's version).
"use strict";
(function () {
  const body = document.body;
  const url = body.dataset.poll;
  if (!url) return;
  const seen = body.dataset.version;
  const tick = async function () {
    try {
      const reply = await fetch(url, { cache: "no-store" });
      if (reply.ok) {
        const version = (await reply.text()).trim();
        if (version !== seen) { window.location.reload(); return; }
      }
    } catch (err) {
      // the server stopped; keep the page as it is
    }
    window.setTimeout(tick, 3000);
  };
  window.setTimeout(tick, 3000);
})();
