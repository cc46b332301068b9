// ReelStream's page: the gateways' API (/auth, /manifests, /licenses, /playback, /downloads)
// plus /web/api/catalog. window.reelApp exposes state for tests and the start-up bench;
// profiles.js (loaded after this) adds "Who's watching?" and the profiles' maturity bands.
(function () {
  'use strict';
  const HEARTBEAT_MS = 30000;
  const BEAT_ATTEMPTS = 3;  // a 5xx or no answer is posted again after 0.5 s, then 1 s
  const $ = (id) => document.getElementById(id);
  const app = {
    token: null, deviceId: null, title: null, player: null, sessionId: null, errors: [],
    timing: null, edgeNodes: [], heartbeats: [], heartbeatTimer: null, lastRendition: null, pathways: [],
    ended: false, stallStart: null, rebufferMs: 0, beatSeq: 0,
  };

  async function api(method, path, body, token) {
    const headers = { 'Content-Type': 'application/json' };
    if (token || app.token) headers.Authorization = 'Bearer ' + (token || app.token);
    const response = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined,
                                          keepalive: method === 'POST' && path.includes('heartbeats') });
    if (!response.ok) throw await httpError(method + ' ' + path, response);
    return response.status === 204 ? null : response.json();
  }

  async function httpError(what, response) {
    const text = await response.text();
    const error = new Error(what + ': ' + response.status + ' ' + text);
    error.status = response.status;
    error.retryAfter = response.headers.get('Retry-After');  // 429 and 503: seconds to wait
    try { error.body = JSON.parse(text); } catch (e) { error.body = null; }
    return error;
  }

  function show(id) {
    for (const s of ['signin', 'profiles', 'catalog', 'title']) $(s).hidden = s !== id;
  }

  // ------------------------------------------------------------------ what the viewer reads when something fails
  // The gateways answer {"error": what was wrong, "reason"}. Shaka wraps an HTTP failure
  // (1001 BAD_HTTP_STATUS: uri, status, body) in the failure of what it fetched (6007
  // LICENSE_REQUEST_FAILED: the inner error); without a network, fetch throws a TypeError
  // and Shaka reports 1002 HTTP_ERROR or 1003 TIMEOUT.
  function explain(error) {
    let e = error || {};
    while (Array.isArray(e.data) && e.data[0] && e.data[0].code) e = e.data[0];
    let status = e.status;
    let body = e.body;
    if (e.code === 1001) {
      status = e.data[1];
      try { body = JSON.parse(e.data[2]); } catch (x) { body = null; }
    }
    if (body && body.error) return { status, text: body.error, reason: body.reason || null };
    if (e instanceof TypeError || e.code === 1002 || e.code === 1003) {
      return { status, text: 'No connection to ReelStream: check your network and try again.' };
    }
    return { status, text: status ? 'The request failed (HTTP ' + status + '); try again.'
                                  : 'Playback failed (error ' + (e.code || e.message) + ').' };
  }

  // A 401 means the session token (12 h) or the playback ticket ran out: sign in again.
  function report(error, element) {
    const { status, text } = explain(error);
    if (status === 401) {
      app.stop('STOPPED').catch(() => {});  // nothing plays behind the sign-in form
      app.token = null;
      show('signin');
      $('signin-error').textContent = 'Your session has expired: sign in again.';
      return;
    }
    const { reason } = explain(error);
    // A title above the profile's band (its rating is in the message): say what the viewer can do.
    $(element).textContent = reason === 'PROFILE_MATURITY'
      ? text + ' Switch profile, or raise its limit under Profiles.' : text;
    $(element).dataset.reason = reason || '';
  }

  // ------------------------------------------------------------------ sign in: a session, then this device
  app.signIn = async function (email, password) {
    const session = await api('POST', '/auth/sessions', { email, password });
    app.token = session.token;
    const key = 'reel.device.' + session.account_id;
    let deviceId = localStorage.getItem(key);
    if (deviceId) {
      try {
        app.token = (await api('POST', '/auth/sessions', { email, password, device_id: deviceId })).token;
      } catch (error) {
        // 403: the device was removed from the account (elsewhere, or by support); kept, its
        // id would refuse every sign-in on this browser. Register the browser again.
        if (error.status !== 403) throw error;
        deviceId = null;
      }
    }
    if (!deviceId) {
      const device = await api('POST', '/auth/devices',
          { name: navigator.userAgent.slice(0, 60), device_type: 'browser', security_level: 'software' });
      deviceId = device.device_id;
      localStorage.setItem(key, deviceId);
      app.token = device.token;
    }
    app.deviceId = deviceId;
    $('who').textContent = email;
    await app.startProfiles();  // profiles.js: "Who's watching?" when the account has a choice
  };

  app.showCatalog = async function () {
    $('catalog-error').textContent = '';
    const { titles } = await api('GET', '/web/api/catalog');
    const grid = $('titles');
    grid.replaceChildren();
    for (const t of titles) {
      const card = document.createElement('div');
      card.className = 'card';
      card.dataset.titleId = t.title_id;
      card.innerHTML = '<img alt=""><div class="name"></div><div class="band"></div><div class="lock"></div>';
      card.querySelector('img').src = '/web/' + t.poster;
      card.querySelector('.name').textContent = t.title;
      card.querySelector('.band').textContent = app.ratingLabel(t);
      if (app.maturityBlock(t)) {  // above the active profile's band: it would be refused
        card.classList.add('locked');
        card.dataset.reason = 'PROFILE_MATURITY';
        card.querySelector('.lock').textContent = 'Not on the ' + app.profile.name + ' profile';
      }
      card.onclick = () => app.showTitle(t).catch((e) => report(e, 'catalog-error'));
      grid.appendChild(card);
    }
    app.catalog = titles;
    show('catalog');
  };

  // ------------------------------------------------------------------ title page: resume point, download
  app.showTitle = async function (t) {
    $('catalog-error').textContent = '';
    await app.stop('STOPPED');
    app.title = t;
    $('title-name').textContent = t.title;
    const blocked = app.maturityBlock(t);
    for (const id of ['play', 'resume', 'download']) $(id).disabled = Boolean(blocked);
    if (blocked) {  // the manifest gateway would refuse it (PROFILE_MATURITY): say so before a press
      $('resume').hidden = true;
      $('download').hidden = true;
      $('download-status').textContent = '';
      $('player-error').textContent = blocked;
      $('player-error').dataset.reason = 'PROFILE_MATURITY';
      show('title');
      return;
    }
    app.resume = await api('GET', '/playback/resume/' + encodeURIComponent(t.title_id));
    const at = app.resume.status === 'resume' ? app.resume.position_ms : (app.resume.last_position_ms || 0);
    const resume = $('resume');
    resume.hidden = !(at > 0 && app.resume.status !== 'watched');
    resume.textContent = 'Continue from ' + formatTime(at / 1000);
    resume.onclick = () => app.play(at / 1000).catch((e) => report(e, 'player-error'));
    $('play').onclick = () => app.play(0).catch((e) => report(e, 'player-error'));
    $('download').hidden = !t.offline;
    $('download').onclick = () => app.download().catch((e) => {
      $('download-status').textContent = 'Download failed: ' + explain(e).text;
    });
    $('download-status').textContent = '';
    $('player-error').textContent = '';
    $('player-error').dataset.reason = '';
    show('title');
  };

  function formatTime(s) {
    const m = Math.floor(s / 60);
    return m + ':' + String(Math.floor(s % 60)).padStart(2, '0');
  }

  // ------------------------------------------------------------------ playback
  app.play = async function (startSeconds) {
    await app.stop('STOPPED');
    app.ended = false;
    app.stallStart = null;
    app.rebufferMs = 0;
    shaka.polyfill.installAll();
    const video = $('video');
    const player = new shaka.Player();
    await player.attach(video);
    app.player = player;
    app.errors = [];
    $('player-error').textContent = '';
    $('player-error').dataset.reason = '';
    app.edgeNodes = [];
    app.pathways = [];
    const t0 = performance.now();
    const timing = app.timing = { pressed: t0, parts: {} };
    const net = player.getNetworkingEngine();
    const T = shaka.net.NetworkingEngine.RequestType;
    net.registerRequestFilter((type, request) => {
      const now = performance.now() - t0;
      if (type === T.MANIFEST && request.uris[0].includes('/manifests/')) {
        request.headers.Authorization = 'Bearer ' + app.token;
        timing.manifestStart = timing.manifestStart ?? now;
      }
      if (type === T.LICENSE) {
        timing.licenseStart = timing.licenseStart ?? now;
        onlyOfferedKeys(player, request);
      }
      if (type === T.SEGMENT && !request.uris[0].includes('init')) timing.segmentStart = timing.segmentStart ?? now;
    });
    net.registerResponseFilter((type, response) => {
      const now = performance.now() - t0;
      if (type === T.MANIFEST) {
        timing.manifestEnd = timing.manifestEnd ?? now;
        app.sessionId = app.sessionId || response.headers['x-reel-session'] || null;
        // CMCD's sid is the playback session from the first segment on, so edge logs join it whole.
        if (app.sessionId && player.getConfiguration().cmcd.sessionId !== app.sessionId) {
          player.configure({ cmcd: { sessionId: app.sessionId } });
        }
      }
      if (type === T.LICENSE) timing.licenseEnd = timing.licenseEnd ?? now;
      if (type === T.CONTENT_STEERING) {  // the steering server's ranking of the tiers for this session
        try { app.pathways = JSON.parse(new TextDecoder().decode(response.data))['PATHWAY-PRIORITY'] || []; } catch (e) { /* kept */ }
      }
      if (type === T.SEGMENT) {
        const node = response.headers['x-edge-node'];
        if (node) {
          app.edgeNodes.push({ node, cache: response.headers['x-cache-status'] || null });
          $('edge').textContent = node;
        }
        if (!response.uri.includes('init')) timing.segmentEnd = timing.segmentEnd ?? now;
      }
    });
    player.addEventListener('error', (e) => { app.errors.push(e.detail.code); report(e.detail, 'player-error'); });
    player.addEventListener('variantchanged', updateStats);
    player.addEventListener('adaptation', updateStats);
    player.configure({
      streaming: { bufferingGoal: 10 },
      preferredAudio: [{ language: 'en', role: 'main' }],
      // CMCD (CTA-5004) in query mode: the edges log it; sid/cid join it to the session.
      cmcd: { enabled: true, useHeaders: false, contentId: app.title.title_id },
    });
    const manifestUrl = location.origin + '/manifests/titles/' + encodeURIComponent(app.title.title_id) + '/manifest.mpd';
    // The license request runs while the first segment downloads: Shaka opens the EME session
    // from the manifest's pssh, and the page does not wait for the license to fetch media.
    try {
      await player.load(manifestUrl, startSeconds || 0);
    } catch (error) {
      app.errors.push(error.code);
      report(error, 'player-error');
      throw error;
    }
    if (app.sessionId) player.configure({ cmcd: { sessionId: app.sessionId } });
    fillTrackMenus();
    video.requestVideoFrameCallback(() => {
      timing.firstFrame = performance.now() - t0;
      timing.parts = {
        manifest: timing.manifestEnd - (timing.manifestStart ?? 0),
        license: (timing.licenseEnd ?? 0) - (timing.licenseStart ?? 0),
        firstSegment: timing.segmentEnd - timing.segmentStart,
        decode: timing.firstFrame - Math.max(timing.segmentEnd, timing.licenseEnd ?? 0),
      };
      timing.licenseParallel = timing.licenseStart !== undefined &&
          timing.licenseStart < timing.segmentEnd && timing.segmentStart < timing.licenseEnd;
      $('startup').textContent = Math.round(timing.firstFrame) + ' ms';
      beat('start', { startup_ms: Math.round(timing.firstFrame) });
    });
    video.addEventListener('pause', onPause);
    video.addEventListener('seeked', onSeeked);
    video.addEventListener('seeking', endStall);
    video.addEventListener('waiting', onWaiting);
    video.addEventListener('playing', endStall);
    video.addEventListener('ended', onEnded);
    app.heartbeatTimer = setInterval(() => beat('heartbeat'), HEARTBEAT_MS);
    await video.play();
    updateStats();
  };

  // The package-wide pssh names every key of the title (HD and UHD too); ask the license
  // server only for the keys of the tracks this device was offered (the manifest's default_KIDs).
  function onlyOfferedKeys(player, request) {
    const info = player.drmInfo();
    if (!info || !info.keyIds || !info.keyIds.size || !request.body) return;
    const toB64url = (hex) => btoa(String.fromCharCode(...hex.match(/../g).map((h) => parseInt(h, 16))))
        .replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    const offered = new Set(Array.from(info.keyIds).map(toB64url));
    try {
      const doc = JSON.parse(new TextDecoder().decode(request.body));
      if (!Array.isArray(doc.kids)) return;
      doc.kids = doc.kids.filter((k) => offered.has(k));
      request.body = new TextEncoder().encode(JSON.stringify(doc)).buffer;
    } catch (e) { /* not a Clear Key JSON request */ }
  }

  // At the end the element fires pause, then ended: the stop beat of onEnded says it all.
  function onPause() { endStall(); if (!app.stopping && !$('video').ended) beat('pause'); }
  function onSeeked() { beat('seek'); }

  // Played to the end: the session is over (it must not hold one of the account's streams
  // until the tab closes), though the player stays, showing the last frame.
  function onEnded() {
    endStall();
    clearInterval(app.heartbeatTimer);
    beat('stop', { end_reason: 'ENDED' });
    app.ended = true;  // after the beat: no beat of this session follows its stop
  }

  // Rebuffering: the buffer ran dry while playing (waiting ... playing). Before the first frame
  // it is start-up time (startup_ms), while seeking it is the seek's; a pause or a seek ends it.
  function onWaiting() {
    const video = $('video');
    if (!app.timing || app.timing.firstFrame === undefined || video.seeking || app.stallStart !== null) return;
    app.stallStart = performance.now();
  }

  function endStall() {
    if (app.stallStart === null) return;
    app.rebufferMs += performance.now() - app.stallStart;
    app.stallStart = null;
  }

  // The time stalled since the previous beat; a stall still going on is counted up to now.
  function takeRebufferMs() {
    const now = performance.now();
    let ms = app.rebufferMs;
    if (app.stallStart !== null) {
      ms += now - app.stallStart;
      app.stallStart = now;
    }
    app.rebufferMs = 0;
    return Math.round(ms);
  }

  function fillTrackMenus() {
    const audio = $('audio');
    audio.replaceChildren();
    for (const t of app.player.getAudioTracks()) {
      const o = new Option(t.label || t.language + (t.roles.includes('description') ? ' (audio description)' : ''),
                           t.language + '|' + t.roles.join(','));
      o.selected = t.active;
      audio.add(o);
    }
    audio.onchange = () => { const [l, r] = audio.value.split('|'); app.selectAudio(l, r.includes('description') ? 'description' : null); };
    const text = $('text');
    text.replaceChildren(new Option('Off', ''));
    for (const t of app.player.getTextTracks()) {
      const sdh = t.roles.includes('caption') || (t.accessibility || []).length > 0;
      text.add(new Option((t.label || t.language) + (sdh ? ' (SDH)' : ''), String(t.id)));
    }
    text.onchange = () => app.selectText(text.value ? Number(text.value) : null);
  }

  app.selectAudio = function (language, role) {
    const track = app.player.getAudioTracks().find((t) => t.language === language &&
        (role ? t.roles.includes(role) : !t.roles.includes('description')));
    if (!track) throw new Error('no audio track ' + language + ' ' + (role || ''));
    app.player.selectAudioTrack(track);
  };

  app.selectText = function (idOrLanguage) {
    if (idOrLanguage === null) { app.player.selectTextTrack(null); return; }  // Shaka 5: null hides
    const track = app.player.getTextTracks().find((t) => t.id === idOrLanguage || t.language === idOrLanguage);
    if (!track) throw new Error('no text track ' + idOrLanguage);
    app.player.selectTextTrack(track);  // Shaka 5 makes a selected text track visible
  };

  app.seek = function (seconds) { $('video').currentTime = seconds; };
  app.pause = function () { $('video').pause(); };

  function updateStats() {
    const v = app.player && app.player.getVariantTracks().find((t) => t.active);
    if (v) {
      $('quality').textContent = v.height + 'p ' + Math.round(v.bandwidth / 1000) + ' kbit/s';
      app.lastRendition = v.videoId;
    }
  }

  function beat(event, extra) {
    if (!app.player || !app.title || !app.sessionId || app.ended) return Promise.resolve();
    const video = $('video');
    const stalled = app.stallStart !== null;
    const stats = app.player.getStats();
    const variant = app.player.getVariantTracks().find((t) => t.active) || {};
    const body = Object.assign({
      sid: app.sessionId, cid: app.title.title_id, event, position_ms: Math.round(video.currentTime * 1000),
      // Beats go on while paused (the session stays live) and must say so: the sessions
      // processor counts the time after a PLAYING beat as viewing time.
      state: (event === 'stop' || event === 'exit') ? 'STOPPED' : event === 'seek' ? 'SEEKING'
          : (event === 'pause' || video.paused) ? 'PAUSED' : stalled ? 'BUFFERING' : 'PLAYING',
      // The gateway keeps no rebuffering on a start beat; there is none before the first frame.
      rebuffer_ms: event === 'start' ? undefined : takeRebufferMs(),
      // The Representation id (the rendition id): QoE counts rendition switches by it.
      rendition_id: variant.originalVideoId || undefined,
      // The rendition's bitrate (CMCD br): the video's alone, not the variant's (video + audio).
      br: (variant.videoBandwidth || variant.bandwidth) ? Math.round((variant.videoBandwidth || variant.bandwidth) / 1000)
          : undefined,
      bl: Math.round(bufferedAhead(video) * 1000),
      mtp: stats.estimatedBandwidth ? Math.round(stats.estimatedBandwidth / 1000) : undefined,
      cdn_node: app.edgeNodes.length ? app.edgeNodes[app.edgeNodes.length - 1].node : undefined,
      ts: Date.now(),
      seq: app.beatSeq++,
    }, extra || {});
    const sent = postBeat(body).then(() => { app.heartbeats.push(body); })
        .catch((e) => { app.errors.push(String(e)); });
    app.pendingBeat = sent;
    return sent;
  }

  // A retry sends the same body, seq included: the gateway gives it its first copy's event
  // ids, so a beat whose answer was lost (it did land) counts once in the session's QoE.
  async function postBeat(body) {
    for (let attempt = 1; ; attempt++) {
      try {
        // sent_ts at each try: the gateway takes ts as (sent_ts - ts) before its own clock,
        // so this device's clock being off does not misplace the beat.
        return await api('POST', '/playback/heartbeats', Object.assign({}, body, { sent_ts: Date.now() }));
      } catch (e) {
        if ((e.status && e.status < 500) || attempt >= BEAT_ATTEMPTS) throw e;
        await new Promise((resolve) => setTimeout(resolve, 500 * attempt));
      }
    }
  }

  function bufferedAhead(video) {
    for (let i = 0; i < video.buffered.length; i++) {
      if (video.buffered.start(i) <= video.currentTime && video.currentTime <= video.buffered.end(i)) {
        return video.buffered.end(i) - video.currentTime;
      }
    }
    return 0;
  }

  app.stop = async function (reason) {
    if (!app.player) return;
    app.stopping = true;
    clearInterval(app.heartbeatTimer);
    await beat(reason === 'EXIT' ? 'exit' : 'stop');
    const video = $('video');
    video.removeEventListener('pause', onPause);
    video.removeEventListener('seeked', onSeeked);
    video.removeEventListener('seeking', endStall);
    video.removeEventListener('waiting', onWaiting);
    video.removeEventListener('playing', endStall);
    video.removeEventListener('ended', onEnded);
    await app.player.destroy();
    app.player = null;
    app.sessionId = null;
    app.beatSeq = 0;
    app.stopping = false;
  };

  // ------------------------------------------------------------------ offline download (where allowed)
  // Chromium's Clear Key CDM has no persistent sessions, so the page keeps what a device's CDM
  // would keep: the persistent license (JWK set, expiry, playback window) from the license
  // server, in this origin's storage. Shaka stores the encrypted segments in IndexedDB and
  // plays them offline with those keys, after checking the license's expiry.
  const OFFLINE_KEY = 'reel.offline.';

  app.download = async function () {
    const status = $('download-status');
    status.textContent = 'asking for a download licence...';
    let grant;
    try {
      grant = await api('POST', '/downloads/licenses', { title_id: app.title.title_id });
    } catch (error) {
      const body = error.body || {};
      status.textContent = 'Not available for download: ' + (body.error || error.message);
      status.dataset.reason = body.reason || String(error.status || '');
      return null;
    }
    status.textContent = 'downloading...';
    const kids = await manifestKeyIds(grant.manifest_url);
    const response = await fetch(grant.license_url, { method: 'POST', headers: { 'Content-Type': 'application/json' },
                                                      body: JSON.stringify({ kids, type: 'persistent-license' }) });
    if (!response.ok) throw await httpError('persistent licence', response);
    const license = await response.json();
    const clearKeys = jwkToClearKeys(license.keys);
    const storage = new shaka.offline.Storage();
    storage.configure({ drm: { clearKeys }, offline: { usePersistentLicense: false } });
    const stored = await storage.store(grant.manifest_url, { title: app.title.title, titleId: app.title.title_id })
        .promise;
    await storage.destroy();
    localStorage.setItem(OFFLINE_KEY + app.title.title_id, JSON.stringify({
      license_id: grant.license_id, type: license.type, keys: license.keys, expires_at_ms: grant.expires_at_ms,
      playback_window_ms: grant.playback_window_ms, offline_uri: stored.offlineUri,
      // The download is this browser's, not the profile's: its band goes with it (checked offline).
      title: app.title.title, rating: app.title.rating, min_age: app.title.min_age }));
    status.textContent = 'downloaded (licence until ' + new Date(grant.expires_at_ms).toLocaleDateString() + ')';
    app.downloaded = stored.offlineUri;
    return stored.offlineUri;
  };

  // The key ids a download needs: the default_KIDs of the manifest rendered for this device.
  async function manifestKeyIds(manifestUrl) {
    const mpd = new DOMParser().parseFromString(await (await fetch(manifestUrl)).text(), 'application/xml');
    const kids = new Set();
    for (const cp of Array.from(mpd.getElementsByTagName('ContentProtection'))) {
      const kid = cp.getAttribute('cenc:default_KID');
      if (kid) kids.add(hexToB64url(kid.replace(/-/g, '')));
    }
    return Array.from(kids);
  }

  const hexToB64url = (hex) => btoa(String.fromCharCode(...hex.match(/../g).map((h) => parseInt(h, 16))))
      .replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  const b64urlToHex = (b64) => Array.from(atob(b64.replace(/-/g, '+').replace(/_/g, '/')))
      .map((c) => c.charCodeAt(0).toString(16).padStart(2, '0')).join('');

  function jwkToClearKeys(keys) {
    const out = {};
    for (const k of keys) out[b64urlToHex(k.kid)] = b64urlToHex(k.k);
    return out;
  }

  // Plays a downloaded title with no network: the kept licence's keys, refused once it expired.
  app.playOffline = async function (titleId) {
    const kept = JSON.parse(localStorage.getItem(OFFLINE_KEY + titleId) || 'null');
    if (!kept) throw new Error('no download of ' + titleId + ' on this device');
    if (Date.now() >= kept.expires_at_ms) throw new Error('the download licence of ' + titleId + ' has expired');
    const blocked = app.maturityBlock(kept.min_age === undefined ? { title: titleId, min_age: 18 } : kept);
    if (blocked) throw Object.assign(new Error(blocked), { reason: 'PROFILE_MATURITY' });
    await app.stop('STOPPED');
    shaka.polyfill.installAll();
    const player = new shaka.Player();
    await player.attach($('video'));
    app.player = player;
    app.errors = [];
    player.addEventListener('error', (e) => { app.errors.push(e.detail.code); });
    player.configure({ drm: { clearKeys: jwkToClearKeys(kept.keys) } });
    await player.load(kept.offline_uri);
    await $('video').play();
  };

  app.offlineLicense = (titleId) => JSON.parse(localStorage.getItem(OFFLINE_KEY + titleId) || 'null');

  // ------------------------------------------------------------------ state for tests and benches
  app.state = function () {
    const video = $('video');
    const player = app.player;
    const profile = app.profile ? Object.assign({}, app.profile) : null;
    if (!player) return { errors: app.errors.slice(), playing: false, profile };
    const audio = player.getAudioTracks().find((t) => t.active) || {};
    const text = player.getTextTracks().find((t) => t.active) || {};
    const variant = player.getVariantTracks().find((t) => t.active) || {};
    let cues = 0;
    for (const track of Array.from(video.textTracks)) if (track.mode === 'showing' && track.cues) cues += track.cues.length;
    return {
      playing: true, currentTime: video.currentTime, paused: video.paused, keySystem: player.keySystem(),
      totalVideoFrames: video.getVideoPlaybackQuality().totalVideoFrames, audioLanguage: audio.language || null,
      audioRoles: audio.roles || [], textLanguage: text.language || null,
      textVisible: Array.from(video.textTracks).some((t) => t.mode === 'showing'), showingCues: cues, height: variant.height || null,
      quality: $('quality').textContent, sessionId: app.sessionId, edgeNodes: app.edgeNodes.slice(),
      pathways: app.pathways.slice(),
      heartbeats: app.heartbeats.slice(), timing: app.timing, errors: app.errors.slice(),
      buffering: app.stallStart !== null, ended: app.ended, profile,
    };
  };

  window.addEventListener('pagehide', () => { if (app.player) beat('exit'); });
  // A mobile browser may kill a backgrounded tab without pagehide: save the position as it
  // goes (beats are posted with keepalive, so this one outlives the tab too).
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'hidden' && app.player) beat('heartbeat');
  });
  $('signin-form').addEventListener('submit', (e) => {
    e.preventDefault();
    $('signin-error').textContent = '';
    app.signIn($('email').value, $('password').value).catch((err) => { $('signin-error').textContent = explain(err).text; });
  });
  $('back').onclick = () => app.stop('STOPPED').then(() => app.showCatalog()).catch((e) => report(e, 'player-error'));
  $('pause').onclick = () => app.pause();
  $('stop').onclick = () => app.stop('STOPPED');
  app.api = api;  // for profiles.js
  app.explain = explain;
  app.report = report;
  app.show = show;
  window.reelApp = app;
})();
