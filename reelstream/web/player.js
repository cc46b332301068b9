// window.reel: load a manifest, switch audio and subtitles, report what the browser decoded.
// Keys come only through EME: DASH names its Clear Key license server (dashif:Laurl),
// HLS its key URIs (KEYFORMAT="identity"); this page never sees a key.
(function () {
  'use strict';
  const reel = { errors: [], player: null, video: null };

  reel.load = async function (manifestUrl, config) {
    shaka.polyfill.installAll();
    if (!shaka.Player.isBrowserSupported()) throw new Error('browser not supported by Shaka Player');
    const video = document.getElementById('video');
    const player = new shaka.Player();
    await player.attach(video);
    player.addEventListener('error', (event) => reel.errors.push(event.detail.code));
    player.configure({ streaming: { bufferingGoal: 10 } });
    if (config) player.configure(config);
    reel.player = player;
    reel.video = video;
    try {
      await player.load(manifestUrl);
    } catch (error) {
      reel.errors.push(error.code);
      throw error;
    }
    video.muted = true;
    await video.play();
  };

  // Shaka 5: audio tracks are chosen by track (language + roles), not by language alone.
  reel.selectAudio = function (language, role) {
    const track = reel.player.getAudioTracks().find((t) => t.language === language &&
        (role ? t.roles.includes(role) : !t.roles.includes('description')));
    if (!track) throw new Error('no audio track ' + language + ' ' + (role || ''));
    reel.player.selectAudioTrack(track);
  };

  reel.showText = function (language) {
    const track = reel.player.getTextTracks().find((t) => t.language === language);
    if (!track) throw new Error('no text track in ' + language);
    reel.player.selectTextTrack(track);  // Shaka 5 makes a selected text track visible
  };

  reel.state = function () {
    const video = reel.video;
    const player = reel.player;
    if (!video || !player) return null;
    const quality = video.getVideoPlaybackQuality();
    const variant = player.getVariantTracks().find((t) => t.active) || {};
    const audio = player.getAudioTracks().find((t) => t.active) || {};
    const text = player.getTextTracks().find((t) => t.active) || {};
    let cues = 0;
    for (const track of Array.from(video.textTracks)) {
      if (track.mode === 'showing' && track.cues) cues += track.cues.length;
    }
    return {
      currentTime: video.currentTime,
      paused: video.paused,
      totalVideoFrames: quality.totalVideoFrames,
      droppedVideoFrames: quality.droppedVideoFrames,
      keySystem: player.keySystem(),
      audioLanguage: audio.language || null,
      audioRoles: audio.roles || [],
      videoHeight: variant.height || null,
      heights: player.getVariantTracks().map((t) => t.height),
      audioLanguages: Array.from(new Set(player.getVariantTracks().map((t) => t.language))),
      textLanguage: text.language || null,
      textVisible: Array.from(video.textTracks).some((t) => t.mode === 'showing'),
      showingCues: cues,
      errors: reel.errors.slice(),
    };
  };

  window.reel = reel;
})();
