package keydir

import (
	"context"
	"time"
)

// DefaultCheckInterval is how often the daemon looks for changes in the key
// directory (Watch).
const DefaultCheckInterval = 5 * time.Second

// Watch reloads the directory every interval until ctx ends (zero:
// DefaultCheckInterval), and logs what changed: keys added with `danemilter
// keys` are used without a restart, and a directory that became unsafe
// holds no key until it is fixed (Reload).
func (d *Dir) Watch(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		interval = DefaultCheckInterval
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			changed, err := d.Reload()
			if err != nil {
				d.log.Error("key directory has unusable files; no key from them is used", "dir", d.path, "err", err)
			}
			if changed {
				d.log.Info("key directory reloaded", "dir", d.path, "keys", len(d.List()))
			}
		}
	}
}
