package hostile

import (
	"encoding/binary"
	"encoding/gob"
	"errors"
	"net"
	"net/rpc"
	"os"
	"strings"
	"testing"
	"time"
)

// gobUint is encoding/gob's unsigned integer: one byte below 128, else the negated byte count then big-endian.
func gobUint(x uint64) []byte {
	if x < 128 {
		return []byte{byte(x)}
	}
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], x)
	i := 0
	for b[i] == 0 {
		i++
	}
	return append([]byte{byte(256 - (8 - i))}, b[i:]...)
}

// gobInt is encoding/gob's signed integer (sign in the low bit).
func gobInt(i int64) []byte {
	if i < 0 {
		return gobUint(uint64(^i<<1) | 1)
	}
	return gobUint(uint64(i << 1))
}

// message frames one gob message: its length, then the bytes.
func message(body []byte) []byte { return append(gobUint(uint64(len(body))), body...) }

// Nest is a recursive type: a value nested as deep as the sender likes.
type Nest struct{ Next *Nest }

func nested(depth int) *Nest {
	n := &Nest{}
	for i := 0; i < depth; i++ {
		n = &Nest{Next: n}
	}
	return n
}

// A call must end in an error (an error reply or a closed stream), never in a reply that pretends success.
func callFails(t *testing.T, client *rpc.Client, method string, arg any, within time.Duration) error {
	t.Helper()
	var reply map[string]any
	call := client.Go(method, arg, &reply, make(chan *rpc.Call, 1))
	select {
	case <-call.Done:
		if call.Error == nil {
			t.Fatalf("%s with a hostile argument succeeded: %v", method, reply)
		}
		return call.Error
	case <-time.After(within):
		t.Fatalf("%s with a hostile argument neither answered nor closed within %v", method, within)
		return nil
	}
}

func TestProtocolAbuseLeavesThePluginServing(t *testing.T) {
	s := startPlugin(t)
	c := connect(t, s)

	t.Run("message declaring 1 GiB", func(t *testing.T) {
		stream := c.pluginStream(t)
		defer stream.Close()
		if _, err := stream.Write(append(gobUint(1<<30), 0x01, 0x02, 0x03)); err != nil {
			t.Fatal(err)
		}
		if _, err := endsWithin(t, stream, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		stillServes(t, s, c)
	})

	t.Run("a real gob argument over the 64 MiB cap", func(t *testing.T) {
		client := rpc.NewClient(c.pluginStream(t))
		defer client.Close()
		err := callFails(t, client, "Plugin.Run", strings.Repeat("x", 64<<20+1), 30*time.Second)
		t.Logf("oversized argument: %v", err)
		stillServes(t, s, c)
	})

	t.Run("argument nested 10000 deep", func(t *testing.T) {
		client := rpc.NewClient(c.pluginStream(t))
		defer client.Close()
		err := callFails(t, client, "Plugin.Run", nested(10_000), 10*time.Second)
		t.Logf("deep nesting: %v", err)
		stillServes(t, s, c)
	})

	t.Run("unknown type id as the request header", func(t *testing.T) {
		stream := c.pluginStream(t)
		defer stream.Close()
		body := append(gobInt(99), 0x01, 0x02)
		if _, err := stream.Write(message(body)); err != nil {
			t.Fatal(err)
		}
		if _, err := endsWithin(t, stream, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		stillServes(t, s, c)
	})

	t.Run("unknown type id as the argument", func(t *testing.T) {
		stream := c.pluginStream(t)
		defer stream.Close()
		enc := gob.NewEncoder(stream)
		if err := enc.Encode(&rpc.Request{ServiceMethod: "Plugin.Run", Seq: 7}); err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Write(message(append(gobInt(1000), 0x00))); err != nil {
			t.Fatal(err)
		}
		// Either an error reply for Seq 7 or the stream closed; never a measurement.
		_ = stream.SetReadDeadline(time.Now().Add(5 * time.Second))
		dec := gob.NewDecoder(stream)
		var resp rpc.Response
		err := dec.Decode(&resp)
		var timeout net.Error
		switch {
		case errors.As(err, &timeout) && timeout.Timeout():
			t.Fatal("no reply and no close within 5s")
		case err == nil && (resp.Seq != 7 || resp.Error == ""):
			t.Fatalf("reply to a request with an undecodable argument: %+v", resp)
		case err == nil:
			t.Logf("error reply: %q", resp.Error)
		default:
			t.Logf("stream closed: %v", err)
		}
		stillServes(t, s, c)
	})

	t.Run("stream closed mid-message", func(t *testing.T) {
		stream := c.pluginStream(t)
		var buf strings.Builder
		_ = gob.NewEncoder(&buf).Encode(&rpc.Request{ServiceMethod: "Plugin.Run", Seq: 1})
		whole := buf.String()
		if _, err := stream.Write([]byte(whole[:len(whole)/2])); err != nil {
			t.Fatal(err)
		}
		_ = stream.Close() // half-close (FIN) in the middle of a message
		if _, err := endsWithin(t, stream, 5*time.Second); err != nil {
			t.Fatal(err)
		}
		stillServes(t, s, c)
	})

	t.Run("control stream garbage", func(t *testing.T) {
		stream, err := c.mux.OpenStream()
		if err != nil {
			t.Fatal(err)
		}
		// A broker stream whose id was never reserved.
		if err := binary.Write(stream, binary.LittleEndian, uint32(0xDEADBEEF)); err != nil {
			t.Fatal(err)
		}
		if _, err := endsWithin(t, stream, 10*time.Second); err != nil {
			t.Fatal(err)
		}
		stillServes(t, s, c)
	})

	// Done: the host quits as go-plugin does; a clean exit after all of it.
	_ = c.control.Call("Control.Quit", true, new(struct{}))
	if err := s.waitExit(t, 10*time.Second); err != nil {
		t.Fatalf("exit after abuse: %v; stderr:\n%s", err, s.stderr)
	}
	s.noPanic(t)
}

func TestYamuxFrameWithBadVersionEndsTheSessionCleanly(t *testing.T) {
	s := startPlugin(t)
	raw, err := net.Dial("unix", s.socket)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	// Version 1, type WindowUpdate, flags SYN, stream 1, delta 0.
	if _, err := raw.Write([]byte{1, 1, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0}); err != nil {
		t.Fatal(err)
	}
	_ = raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	var header [12]byte
	if _, err := raw.Read(header[:]); err == nil {
		// A yamux peer that detects a protocol error answers GoAway(protocol error) before it hangs up.
		if header[1] != 3 || binary.BigEndian.Uint32(header[8:]) != 1 {
			t.Fatalf("expected GoAway(protocol error), got header % x", header)
		}
	}
	if err := s.waitExit(t, 10*time.Second); err != nil {
		t.Fatalf("exit after a bad frame: %v; stderr:\n%s", err, s.stderr)
	}
	s.noPanic(t)
	if _, err := os.Stat(s.socket); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket left behind after a bad frame: %v", err)
	}
}
