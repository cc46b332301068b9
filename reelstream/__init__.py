"""ReelStream: an event-sourced video-on-demand streaming platform."""

__version__ = "0.1.0"
