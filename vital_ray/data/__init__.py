"""Records (VITAL's JSON format), synthetic long-video tasks, prompt sampling, teacher traces."""
