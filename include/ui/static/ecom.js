// Optional auto-refresh of the live pages; the choice is kept per browser.
(function () {
  var box = document.getElementById("auto-refresh");
  if (!box) return;
  var key = "ecom-auto-refresh";
  box.checked = window.localStorage.getItem(key) === "1";
  var timer = null;
  function arm() {
    if (timer) window.clearTimeout(timer);
    timer = box.checked ? window.setTimeout(function () { window.location.reload(); }, 30000) : null;
  }
  box.addEventListener("change", function () {
    window.localStorage.setItem(key, box.checked ? "1" : "0");
    arm();
  });
  arm();
})();
