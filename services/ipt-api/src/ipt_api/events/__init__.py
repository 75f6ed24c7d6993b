"""The ordered event feed for pull consumers (`/ipt/v1/events`) and `ipt events`."""
