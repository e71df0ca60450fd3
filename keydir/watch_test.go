package keydir

import (
	"context"
	"testing"
	"time"
)

// TestWatch: a key written into the directory while the daemon runs is used
// without a restart.
func TestWatch(t *testing.T) {
	root := keyDir(t)
	d, err := Open(root, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go d.Watch(ctx, 10*time.Millisecond)
	k, err := GenerateSMIME("carol@example.com", SMIMEP256, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := WriteSMIME(root, "carol@example.com", k); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(d.SMIME("carol@example.com")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the new key was not picked up by Watch")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
