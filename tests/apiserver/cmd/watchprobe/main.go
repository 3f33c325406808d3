// Command watchprobe sends the watch-progress requests the apiserver relies on to one endpoint and
// prints every answer, one line each, so that Tally's and etcd's answers can be diffed:
//
//	go run ./cmd/watchprobe -endpoint 127.0.0.1:2379 > tally.txt
//	go run ./cmd/watchprobe -endpoint 127.0.0.1:12379 > etcd.txt
//	diff tally.txt etcd.txt
//
// Revisions are printed relative to the revision of the probe's first put (R), so clusters with
// different histories compare. Start the servers with a 1s progress notify interval
// (--experimental-watch-progress-notify-interval=1s) for the timer cases.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

var base int64

func rel(r int64) string {
	if r == 0 {
		return "0"
	}
	return fmt.Sprintf("R%+d", r-base)
}

func show(resp *pb.WatchResponse) string {
	var ev []string
	for _, e := range resp.Events {
		ev = append(ev, fmt.Sprintf("%s %s@%s", e.Type, e.Kv.Key, rel(e.Kv.ModRevision)))
	}
	s := fmt.Sprintf("watch_id=%d rev=%s created=%v canceled=%v", resp.WatchId, rel(resp.Header.GetRevision()), resp.Created, resp.Canceled)
	if resp.CompactRevision != 0 {
		s += fmt.Sprintf(" compact=%d", resp.CompactRevision)
	}
	if resp.CancelReason != "" {
		s += fmt.Sprintf(" reason=%q", resp.CancelReason)
	}
	if resp.Fragment {
		s += " fragment"
	}
	if len(ev) > 0 {
		s += " events=[" + strings.Join(ev, ", ") + "]"
	} else if !resp.Created && !resp.Canceled {
		s += " (progress)"
	}
	return s
}

type stream struct {
	name string
	w    pb.Watch_WatchClient
	ch   chan *pb.WatchResponse
}

func open(ctx context.Context, wc pb.WatchClient, name string) *stream {
	w, err := wc.Watch(ctx)
	if err != nil {
		fail(err)
	}
	s := &stream{name, w, make(chan *pb.WatchResponse, 1000)}
	go func() {
		for {
			r, err := w.Recv()
			if err != nil {
				close(s.ch)
				return
			}
			s.ch <- r
		}
	}()
	return s
}

func (s *stream) send(req *pb.WatchRequest, what string) {
	fmt.Printf("%s > %s\n", s.name, what)
	if err := s.w.Send(req); err != nil {
		fail(err)
	}
}

// drain prints what arrives for d; lines of one batch are printed in arrival order.
func (s *stream) drain(d time.Duration) {
	t := time.After(d)
	for {
		select {
		case r, ok := <-s.ch:
			if !ok {
				fmt.Printf("%s < (stream closed)\n", s.name)
				return
			}
			fmt.Printf("%s < %s\n", s.name, show(r))
		case <-t:
			return
		}
	}
}

func create(key, end string, start int64, progress bool) *pb.WatchRequest {
	return &pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{
		Key: []byte(key), RangeEnd: []byte(end), StartRevision: start, ProgressNotify: progress}}}
}

func progressReq() *pb.WatchRequest {
	return &pb.WatchRequest{RequestUnion: &pb.WatchRequest_ProgressRequest{ProgressRequest: &pb.WatchProgressRequest{}}}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "watchprobe:", err)
	os.Exit(1)
}

func main() {
	endpoint := flag.String("endpoint", "127.0.0.1:2379", "one client endpoint")
	prefix := flag.String("prefix", fmt.Sprintf("/probe-%d/", time.Now().UnixNano()), "key prefix")
	timer := flag.Duration("timer", 2500*time.Millisecond, "how long to wait for timer progress notifications")
	flag.Parse()
	ctx := context.Background()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{*endpoint}, DialTimeout: 5 * time.Second})
	if err != nil {
		fail(err)
	}
	defer c.Close()
	st, err := c.Status(ctx, *endpoint)
	if err != nil {
		fail(err)
	}
	fmt.Printf("status version=%s\n", st.Version)
	p := *prefix
	put := func(k string) int64 {
		r, err := c.Put(ctx, p+k, "v")
		if err != nil {
			fail(err)
		}
		return r.Header.Revision
	}
	base = put("a")
	fmt.Printf("put %sa -> R\n", "P/")
	wc := pb.NewWatchClient(c.ActiveConnection())
	pe := string(clientv3.GetPrefixRangeEnd(p))

	fmt.Println("# 1. progress request on a stream without watchers")
	s1 := open(ctx, wc, "s1")
	s1.send(progressReq(), "progress_request")
	s1.drain(300 * time.Millisecond)

	fmt.Println("# 2. two synced watchers (one with progress_notify), then a progress request")
	s1.send(create(p+"a", "", 0, false), "create key=P/a start=0")
	s1.drain(200 * time.Millisecond)
	s1.send(create(p, pe, base+1, true), "create prefix=P/ start=R+1 progress_notify")
	s1.drain(200 * time.Millisecond)
	s1.send(progressReq(), "progress_request")
	s1.drain(300 * time.Millisecond)
	put("b")
	fmt.Println("put P/b -> R+1")
	s1.drain(300 * time.Millisecond)
	s1.send(progressReq(), "progress_request")
	s1.drain(300 * time.Millisecond)

	fmt.Println("# 3. a watcher on a past revision, then a progress request at once")
	s2 := open(ctx, wc, "s2")
	s2.send(create(p, pe, base, false), "create prefix=P/ start=R")
	s2.send(progressReq(), "progress_request")
	s2.drain(500 * time.Millisecond)

	fmt.Printf("# 4. timer: watchers with progress_notify, idle for %v\n", *timer)
	s3 := open(ctx, wc, "s3")
	s3.send(create(p+"x", "", 0, true), "create key=P/x start=0 progress_notify")
	s3.send(create(p+"y", "", base+100, true), "create key=P/y start=R+100 (future) progress_notify")
	s3.send(create(p+"z", "", 0, false), "create key=P/z start=0")
	s3.drain(*timer)

	fmt.Println("# 5. progress request after a write to another key")
	put("c")
	fmt.Println("put P/c -> R+2")
	s3.send(progressReq(), "progress_request")
	s3.drain(300 * time.Millisecond)

	fmt.Println("# 6. cancel, then a progress request")
	s3.send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CancelRequest{CancelRequest: &pb.WatchCancelRequest{WatchId: 0}}}, "cancel watch_id=0")
	s3.drain(200 * time.Millisecond)
	s3.send(progressReq(), "progress_request")
	s3.drain(300 * time.Millisecond)

	c.Delete(ctx, p, clientv3.WithPrefix())
}
