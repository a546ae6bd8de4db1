/* Live parts of a page, with nothing from outside the service.
 *
 * An element with data-live-src is filled again from that address (an HTML fragment of the same page)
 * every data-live-interval milliseconds (default 1000), until the fragment holds an element marked
 * data-final. An element with data-seconds-left counts down to zero ("m:ss left"); then it shows its
 * data-expired-text and disables the buttons of the form its data-disables names (a CSS selector).
 * Without JavaScript the pages work too: they show the state of the moment and a link to look again.
 */
(function () {
  "use strict";

  function pad(n) {
    return (n < 10 ? "0" : "") + n;
  }

  function left(seconds) {
    var h = Math.floor(seconds / 3600);
    var m = Math.floor((seconds % 3600) / 60);
    var s = seconds % 60;
    return (h ? h + ":" + pad(m) : String(m)) + ":" + pad(s) + " left";
  }

  function countdowns(root) {
    root.querySelectorAll("[data-seconds-left]").forEach(function (el) {
      if (!el.liveEnd) {
        el.liveEnd = Date.now() + parseFloat(el.getAttribute("data-seconds-left")) * 1000;
      }
      var seconds = Math.max(0, Math.ceil((el.liveEnd - Date.now()) / 1000));
      if (seconds > 0) {
        el.textContent = left(seconds);
        return;
      }
      if (el.classList.contains("expired")) {
        return;
      }
      el.classList.add("expired");
      el.textContent = el.getAttribute("data-expired-text") || "expired";
      var form = el.getAttribute("data-disables");
      if (form) {
        document.querySelectorAll(form + " button, " + form + " input, " + form + " select").forEach(
          function (field) {
            field.disabled = true;
          }
        );
      }
    });
  }

  function poll(el) {
    var interval = parseInt(el.getAttribute("data-live-interval") || "1000", 10);
    function again() {
      if (el.querySelector("[data-final]")) {
        return;
      }
      fetch(el.getAttribute("data-live-src"), {
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "text/html", "X-Requested-With": "fetch" },
      })
        .then(function (answer) {
          return answer.ok ? answer.text() : Promise.reject(answer.status);
        })
        .then(function (html) {
          el.innerHTML = html;
          countdowns(el);
        })
        .catch(function () {
          /* a failed look is tried again at the next tick */
        })
        .finally(function () {
          setTimeout(again, interval);
        });
    }
    setTimeout(again, interval);
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live-src]").forEach(poll);
    countdowns(document);
    setInterval(function () {
      countdowns(document);
    }, 1000);
  });
})();
