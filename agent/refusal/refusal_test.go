package refusal

import (
	"errors"
	"fmt"
	"testing"
)

func TestRefusal(t *testing.T) {
	cause := errors.New("store s3://b unreachable")
	r := Errorf("the newest snapshot is unknown: %w", cause)
	wrapped := fmt.Errorf("leave: %w", r)
	if got, want := wrapped.Error(), "leave: refused: the newest snapshot is unknown: store s3://b unreachable"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
	if !Is(wrapped) || !errors.Is(wrapped, cause) {
		t.Errorf("Is %v, errors.Is(cause) %v: want both", Is(wrapped), errors.Is(wrapped, cause))
	}
	if Is(cause) || Is(nil) {
		t.Error("a plain error or nil is not a refusal")
	}
	again := FromMessage(r.Error())
	if !Is(again) || again.Error() != r.Error() {
		t.Errorf("FromMessage(%q) = %q (refusal %v)", r.Error(), again, Is(again))
	}
}
