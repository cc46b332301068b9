// "Who's watching?": the account's profiles, each with a maturity band (0, 7, 13, 16, 18).
// The session token names one profile, and the manifest and downloads gateways hold every
// title's rating to that profile's band (403, reason PROFILE_MATURITY, above it). Choosing a
// profile gets a token naming it on this device (POST /auth/profiles/{id}/sessions); one whose
// band is above the current profile's, and raising a band (PATCH /auth/profiles/{id}), need
// the account's password: a child holding the family TV must not lift its own limit.
(function () {
  'use strict';
  const app = window.reelApp;
  const $ = (id) => document.getElementById(id);
  const BANDS = [0, 7, 13, 16, 18];  // identity.accounts.AGE_BANDS
  const bandLabel = (age) => (age === 0 ? 'all ages' : age + '+');
  let pending = null;  // what the password form will do: { why, run(password), cancel() }

  app.profile = null;
  app.profiles = [];

  // After sign-in: a picker when there is a choice to make, else straight to the catalog.
  app.startProfiles = async function () {
    await loadProfiles();
    if (app.profiles.length > 1) showPicker();
    else await app.showCatalog();
  };

  async function loadProfiles() {
    const me = await app.api('GET', '/auth/me');
    app.profiles = me.profiles;
    app.profile = me.profiles.find((p) => p.profile_id === me.profile_id) || null;
    showActive();
  }

  function showActive() {
    $('active-profile').textContent = app.profile ? ' · ' + app.profile.name + ' (' + bandLabel(app.profile.max_age) + ')' : '';
    $('switch-profile').hidden = !app.token;
  }

  function showPicker() {
    clearMessages();
    hidePassword();
    renderPicker();
    app.show('profiles');
  }

  app.showProfiles = async function () {
    await app.stop('STOPPED');  // nothing plays behind the picker
    await loadProfiles();
    showPicker();
  };

  function renderPicker() {
    const list = $('profile-list');
    list.replaceChildren();
    for (const p of app.profiles) {
      const tile = document.createElement('div');
      tile.className = 'profile' + (app.profile && p.profile_id === app.profile.profile_id ? ' active' : '');
      tile.dataset.profileId = p.profile_id;
      const pick = document.createElement('button');
      pick.type = 'button';
      pick.className = 'pick';
      pick.textContent = p.name + ' · ' + bandLabel(p.max_age);
      pick.onclick = () => app.chooseProfile(p.profile_id).catch(failed);
      const label = document.createElement('label');
      label.textContent = 'Plays titles up to ';
      const band = bandSelect(p.max_age);
      band.className = 'band';
      band.onchange = () => app.setBand(p.profile_id, Number(band.value)).catch(failed);
      label.appendChild(band);
      tile.append(pick, label);
      list.appendChild(tile);
    }
  }

  function bandSelect(selected) {
    const select = document.createElement('select');
    for (const age of BANDS) select.add(new Option(bandLabel(age), String(age), false, age === selected));
    return select;
  }

  // ------------------------------------------------------------------ choosing, adding, changing
  app.chooseProfile = async function (profileId, password) {
    const target = profileById(profileId);
    clearMessages();
    if (app.profile && target.profile_id === app.profile.profile_id) {  // already watching as it
      await app.showCatalog();
      return;
    }
    const from = app.profile ? app.profile.max_age : 0;
    if (password === undefined && target.max_age > from) {
      askPassword('Switching to ' + target.name + ' (' + bandLabel(target.max_age) + ') from a profile limited to ' +
                  bandLabel(from) + ' needs the account password.', (pw) => app.chooseProfile(profileId, pw));
      return;
    }
    await app.stop('STOPPED');
    const session = await retryable((pw) => app.chooseProfile(profileId, pw), app.api(
        'POST', '/auth/profiles/' + encodeURIComponent(profileId) + '/sessions', password === undefined ? {} : { password }));
    app.token = session.token;
    app.profile = session.profile;
    hidePassword();
    showActive();
    await app.showCatalog();
  };

  app.addProfile = async function (name, maxAge) {
    clearMessages();
    const added = await app.api('POST', '/auth/profiles', { name, max_age: maxAge });
    app.profiles.push(added);
    renderPicker();
    $('profiles-status').textContent = 'Added ' + added.name + ' (plays titles up to ' + bandLabel(added.max_age) + ').';
    return added;
  };

  app.setBand = async function (profileId, maxAge, password) {
    const profile = profileById(profileId);
    clearMessages();
    if (password === undefined && maxAge > profile.max_age) {
      askPassword('Raising ' + profile.name + "'s limit from " + bandLabel(profile.max_age) + ' to ' + bandLabel(maxAge) +
                  ' needs the account password.', (pw) => app.setBand(profileId, maxAge, pw), renderPicker);
      return;
    }
    const body = password === undefined ? { max_age: maxAge } : { max_age: maxAge, password };
    const updated = await retryable((pw) => app.setBand(profileId, maxAge, pw),
                                    app.api('PATCH', '/auth/profiles/' + encodeURIComponent(profileId), body));
    app.profiles = app.profiles.map((p) => (p.profile_id === profileId ? updated : p));
    if (app.profile && app.profile.profile_id === profileId) app.profile = updated;
    hidePassword();
    renderPicker();
    showActive();
    $('profiles-status').textContent = updated.name + ' now plays titles up to ' + bandLabel(updated.max_age) + '.';
  };

  // A failure says how to do it again with a password, should the server ask for one.
  async function retryable(retry, request) {
    try {
      return await request;
    } catch (error) {
      error.retry = retry;
      throw error;
    }
  }

  function profileById(profileId) {
    const profile = app.profiles.find((p) => p.profile_id === profileId);
    if (!profile) throw new Error('this account has no profile ' + profileId + ': reload the page');
    return profile;
  }

  // ------------------------------------------------------------------ the password, and what failed
  function askPassword(why, run, cancel) {
    pending = { why, run, cancel: cancel || (() => {}) };
    $('profile-password-why').textContent = why;
    $('profile-password').value = '';
    $('profile-password-form').hidden = false;
    $('profile-password').focus();
  }

  function hidePassword() {
    pending = null;
    $('profile-password-form').hidden = true;
    $('profile-password').value = '';
  }

  function clearMessages() {
    $('profiles-error').textContent = '';
    $('profiles-error').dataset.status = '';
    $('profiles-status').textContent = '';
  }

  // 401 with a password typed: it was wrong (the form stays open to try again); 401 naming the
  // password with none typed: the server wants one the page did not know it needed (a band
  // changed elsewhere); 429: too many wrong passwords for this account lately (Retry-After).
  function failed(error) {
    const { status, text } = app.explain(error);
    const message = $('profiles-error');
    message.dataset.status = String(status || '');
    const typed = error.passwordSent;
    if (status === 429) {
      message.textContent = 'Too many wrong passwords for this account: try again in ' +
          formatWait(error.retryAfter) + '. Nothing was changed.';
      return;
    }
    if (status === 401 && /password/.test(text)) {
      if (typed && pending) {
        message.textContent = 'That password is wrong, so nothing was changed: ' + pending.why.replace(/\.$/, '') +
            '. Type the account password (the one used to sign in) and try again.';
        $('profile-password').value = '';
        return;
      }
      if (!typed && error.retry) {
        askPassword(text, error.retry, renderPicker);
        return;
      }
    }
    if (pending) pending.cancel();
    hidePassword();
    if (status === 401) { app.report(error, 'profiles-error'); return; }  // the session itself ran out
    message.textContent = text;
  }

  function formatWait(seconds) {
    const s = Number(seconds);
    if (!Number.isFinite(s) || s <= 0) return 'a few minutes';
    const m = Math.floor(s / 60);
    return (m ? m + ' min ' : '') + (s % 60) + ' s';
  }

  // The API calls above tag their failures: whether a password went with them, and how to retry.
  const call = app.api;
  app.api = async function (method, path, body, token) {
    try {
      return await call(method, path, body, token);
    } catch (error) {
      error.passwordSent = Boolean(body && body.password !== undefined);
      throw error;
    }
  };

  // ------------------------------------------------------------------ what the active profile may watch
  // The catalog's age band for each title (min_age, as the manifest gateway ranks its rating):
  // the reason a title will not open on this profile, or null.
  app.maturityBlock = function (t) {
    if (!app.profile || typeof t.min_age !== 'number' || t.min_age <= app.profile.max_age) return null;
    const rated = t.rating ? 'rated ' + t.rating.value + ' (' + t.rating.system + ', ' + t.min_age + '+)'
                           : 'not rated (counted as ' + t.min_age + '+)';
    return '"' + t.title + '" is ' + rated + ', and the ' + app.profile.name + ' profile plays titles up to ' +
        bandLabel(app.profile.max_age) + '. Switch profile, or raise ' + app.profile.name +
        "'s limit under Profiles (it needs the account password).";
  };

  app.ratingLabel = function (t) {
    if (typeof t.min_age !== 'number') return '';
    return (t.rating ? t.rating.value + ' · ' : '') + bandLabel(t.min_age);
  };

  // ------------------------------------------------------------------ the page's controls
  $('switch-profile').onclick = () => app.showProfiles().catch(failed);
  $('profile-password-form').addEventListener('submit', (e) => {
    e.preventDefault();
    if (!pending) return;
    const password = $('profile-password').value;
    pending.run(password).catch(failed);
  });
  $('profile-password-cancel').onclick = () => { if (pending) pending.cancel(); hidePassword(); clearMessages(); };
  const newBand = $('new-profile-band');
  for (const age of BANDS) newBand.add(new Option(bandLabel(age), String(age), false, age === 7));
  $('new-profile-form').addEventListener('submit', (e) => {
    e.preventDefault();
    app.addProfile($('new-profile-name').value.trim(), Number(newBand.value))
        .then(() => { $('new-profile-name').value = ''; })
        .catch(failed);
  });
})();
