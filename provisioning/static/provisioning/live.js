// Live status without reloading the page. The pages work without it; it only adds:
// - an element with data-live-url is fetched again every data-live-interval ms (1000 by default) and
//   replaced when its data-version (or, without one, its content) changed, until it carries data-final;
// - a form with data-live-submit inside such an element posts in the background and shows the answer;
// - a button with data-copy="<id>" copies the value or text of that element (shown only with scripts).
(function () {
  "use strict";

  function fresh(id, html) {
    var doc = new DOMParser().parseFromString(html, "text/html");
    return doc.getElementById(id);
  }

  function changed(current, next) {
    var a = current.getAttribute("data-version");
    var b = next.getAttribute("data-version");
    return a !== null && b !== null ? a !== b : current.innerHTML !== next.innerHTML;
  }

  function swap(id, html) {
    var current = document.getElementById(id);
    var next = current && fresh(id, html);
    if (!next) {
      return current;
    }
    if (changed(current, next)) {
      current.replaceWith(next);
      enhance(next);
      return next;
    }
    return current;
  }

  function schedule(element) {
    if (!element || !element.id || element.hasAttribute("data-final")) {
      return;
    }
    var interval = parseInt(element.getAttribute("data-live-interval") || "1000", 10);
    window.setTimeout(function () {
      poll(element.id);
    }, interval);
  }

  function poll(id) {
    var element = document.getElementById(id);
    if (!element) {
      return;
    }
    fetch(element.getAttribute("data-live-url"), {
      credentials: "same-origin",
      headers: { "X-Live": "1" },
    })
      .then(function (answer) {
        return answer.ok ? answer.text() : Promise.reject(answer.status);
      })
      .then(function (html) {
        schedule(swap(id, html));
      })
      .catch(function () {
        schedule(document.getElementById(id)); // a lost poll: try again later
      });
  }

  function enhance(root) {
    root.querySelectorAll("button[data-copy]").forEach(function (button) {
      button.hidden = false;
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (!button) {
      return;
    }
    var source = document.getElementById(button.getAttribute("data-copy"));
    var text = source.value !== undefined ? source.value : source.textContent;
    var done = function () {
      button.textContent = "Copied";
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () {
        source.select();
      });
    } else {
      source.select();
      document.execCommand("copy");
      done();
    }
  });

  document.addEventListener("submit", function (event) {
    var form = event.target;
    var live = form.closest("[data-live-url]");
    if (!form.hasAttribute("data-live-submit") || !live) {
      return;
    }
    event.preventDefault();
    var id = live.id;
    form.querySelectorAll("button").forEach(function (button) {
      button.disabled = true;
    });
    fetch(form.action, {
      method: "POST",
      body: new FormData(form),
      credentials: "same-origin",
      headers: { "X-Live": "1" },
    })
      .then(function (answer) {
        return answer.text();
      })
      .then(function (html) {
        var next = swap(id, html);
        if (next && next.hasAttribute("data-final")) {
          return;
        }
        form.querySelectorAll("button").forEach(function (button) {
          button.disabled = false;
        });
      });
  });

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live-url]").forEach(function (element) {
      enhance(element);
      schedule(element);
    });
  });
})();
