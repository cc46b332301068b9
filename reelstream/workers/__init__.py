"""Workers: the transcode fleet (a consumer group on reel.transcode.jobs)."""
