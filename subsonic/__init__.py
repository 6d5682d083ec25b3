"""The Subsonic/OpenSubsonic API (/rest/...): phone and desktop music apps browse the library, play
mixtapes as playlists and stream through the audio cache. See docs/architecture.md."""
