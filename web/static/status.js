(function () {
  var el = document.getElementById('status');
  var xhr = new XMLHttpRequest();
  xhr.open('GET', '/readyz');
  xhr.onload = function () {
    el.textContent = xhr.status === 200 ? 'ready' : 'not ready (' + xhr.status + ')';
    el.className = xhr.status === 200 ? 'ok' : 'bad';
  };
  xhr.onerror = function () { el.textContent = 'unreachable'; el.className = 'bad'; };
  xhr.send();
})();
