package api_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/respawnd/respawnd/api"
	"github.com/respawnd/respawnd/postmortem"
	"github.com/respawnd/respawnd/supervisor"
)

// deathDaemon is a fakeDaemon that keeps death records.
type deathDaemon struct {
	*fakeDaemon
	recs  []api.Death // newest first
	err   error
	limit int // the last limit asked for
}

func (d *deathDaemon) Deaths(program string, limit int) ([]api.Death, error) {
	d.limit = limit
	var out []api.Death
	for _, r := range d.recs {
		if (program == "" || r.Program == program) && len(out) < limit {
			out = append(out, r)
		}
	}
	return out, d.err
}

func (d *deathDaemon) Death(id string) (api.Death, error) {
	for _, r := range d.recs {
		if r.ID == id {
			return r, nil
		}
	}
	return api.Death{}, fmt.Errorf("%w: %s", postmortem.ErrNotFound, id)
}

func newDeathDaemon(n int) *deathDaemon {
	d := &deathDaemon{fakeDaemon: newFake()}
	for i := n; i >= 1; i-- {
		code := 3
		d.recs = append(d.recs, api.Death{ID: fmt.Sprintf("17961988352977553%02d-%d-api", i, i), Program: "api", Generation: uint64(i),
			Reason: "exit_error", ExitCode: &code, Died: time.Unix(int64(i), 0), OutputKept: true,
			Output: []postmortem.Line{{Stream: "stderr", Text: "boom " + fmt.Sprint(i)}}})
	}
	return d
}

func TestDeathsEndpoints(t *testing.T) {
	d := newDeathDaemon(12)
	srv := httptest.NewServer(api.NewHandler(api.Config{Source: d}))
	defer srv.Close()

	code, b := get(t, srv.URL+api.PathPrograms+"/api"+api.SuffixDeaths)
	if code != http.StatusOK {
		t.Fatalf("deaths: %d %s", code, b)
	}
	var resp api.DeathsResponse
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&resp); err != nil {
		t.Fatalf("decoding %s: %v", b, err)
	}
	if len(resp.Deaths) != api.DefaultDeathLimit || d.limit != api.DefaultDeathLimit || resp.Deaths[0].Generation != 12 || resp.Deaths[0].Output[0].Text != "boom 12" {
		t.Fatalf("default limit: got %d records (asked %d), first %+v", len(resp.Deaths), d.limit, resp.Deaths[0])
	}
	if code, b = get(t, srv.URL+api.PathPrograms+"/api"+api.SuffixDeaths+"?limit=2"); code != http.StatusOK {
		t.Fatalf("limit=2: %d %s", code, b)
	}
	if err := json.Unmarshal(b, &resp); err != nil || len(resp.Deaths) != 2 || d.limit != 2 {
		t.Fatalf("limit=2: %d records, asked %d, %v", len(resp.Deaths), d.limit, err)
	}

	d.recs = append([]api.Death{{ID: "1796198835297755399-1-web", Program: "web", Reason: "signal"}}, d.recs...)
	if code, b = get(t, srv.URL+api.PathDeaths+"?limit=3"); code != http.StatusOK {
		t.Fatalf("every program's deaths: %d %s", code, b)
	}
	if err := json.Unmarshal(b, &resp); err != nil || len(resp.Deaths) != 3 || resp.Deaths[0].Program != "web" || resp.Deaths[1].Program != "api" {
		t.Fatalf("every program's deaths: %s, %v", b, err)
	}
	id := resp.Deaths[2].ID
	code, b = get(t, srv.URL+api.PathDeaths+"/"+id)
	var one api.Death
	if code != http.StatusOK || json.Unmarshal(b, &one) != nil || one.ID != id {
		t.Fatalf("death %s: %d %s", id, code, b)
	}

	for _, bad := range []string{"0", "101", "-1", "x", "1&limit=2"} {
		if code, b := get(t, srv.URL+api.PathPrograms+"/api"+api.SuffixDeaths+"?limit="+bad); code != http.StatusBadRequest {
			t.Errorf("limit=%s: %d %s, want 400", bad, code, b)
		}
	}
	for path, want := range map[string]int{
		api.PathPrograms + "/nope" + api.SuffixDeaths:       http.StatusNotFound, // no such program, no records
		api.PathPrograms + "/NOPE" + api.SuffixDeaths:       http.StatusNotFound,
		api.PathPrograms + "/api" + api.SuffixDeaths + "/x": http.StatusNotFound,
		api.PathDeaths + "/1796198835297755301-1-nope":      http.StatusNotFound,
		api.PathDeaths + "/..%2f..%2fsecret":                http.StatusNotFound,
		api.PathDeaths + "/" + strings.Repeat("1", 200):     http.StatusNotFound,
		api.PathDeaths + "/":                                http.StatusNotFound,
	} {
		if code, b := get(t, srv.URL+path); code != want {
			t.Errorf("GET %s: %d %s, want %d", path, code, b, want)
		}
	}
	if code, b := post(t, srv.URL+api.PathPrograms+"/api"+api.SuffixDeaths); code != http.StatusMethodNotAllowed {
		t.Errorf("POST deaths: %d %s", code, b)
	}

	// A configured program that never died has an empty list, not a 404.
	d.recs = nil
	if code, b := get(t, srv.URL+api.PathPrograms+"/api"+api.SuffixDeaths); code != http.StatusOK || !strings.Contains(string(b), `"deaths":[]`) {
		t.Errorf("no deaths: %d %s", code, b)
	}
	d.err = errors.New("disk on fire")
	if code, b := get(t, srv.URL+api.PathPrograms+"/api"+api.SuffixDeaths); code != http.StatusInternalServerError || strings.Contains(string(b), "fire") {
		t.Errorf("store error: %d %s", code, b)
	}
}

// Records with long output are cut from the answer, oldest first, before
// the answer outgrows what a client reads.
func TestDeathsAnswerIsBounded(t *testing.T) {
	d := newDeathDaemon(40)
	long := strings.Repeat("\x01", 64<<10) // 6 bytes each in JSON
	for i := range d.recs {
		d.recs[i].Output = []postmortem.Line{{Stream: "stdout", Text: long}}
	}
	srv := httptest.NewServer(api.NewHandler(api.Config{Source: d}))
	defer srv.Close()
	code, b := get(t, srv.URL+api.PathPrograms+"/api"+api.SuffixDeaths+"?limit=40")
	var resp api.DeathsResponse
	if code != http.StatusOK || json.Unmarshal(b, &resp) != nil {
		t.Fatalf("%d, %d bytes", code, len(b))
	}
	if !resp.Truncated || len(resp.Deaths) == 40 || len(resp.Deaths) == 0 || len(b) > 8<<20+64<<10*6 {
		t.Fatalf("truncated=%v records=%d bytes=%d", resp.Truncated, len(resp.Deaths), len(b))
	}
	if resp.Deaths[0].Generation != 40 {
		t.Fatalf("the newest record must stay: first is generation %d", resp.Deaths[0].Generation)
	}
}

// Without a DeathSource the endpoints say records are not kept.
func TestDeathsWithoutRecords(t *testing.T) {
	srv := httptest.NewServer(api.NewHandler(api.Config{Source: newFake()}))
	defer srv.Close()
	if code, b := get(t, srv.URL+api.PathPrograms+"/api"+api.SuffixDeaths); code != http.StatusNotFound || !strings.Contains(string(b), "not kept") {
		t.Errorf("deaths without records: %d %s", code, b)
	}
}

func TestEventsOfOneProgram(t *testing.T) {
	f := newFake()
	srv := httptest.NewServer(api.NewHandler(api.Config{Source: f}))
	defer srv.Close()
	code, b := get(t, srv.URL+api.PathEvents+"?program=api")
	var er api.EventsResponse
	if code != http.StatusOK || json.Unmarshal(b, &er) != nil || len(er.Events) != 1 || er.Events[0].Program == nil || *er.Events[0].Program != "api" {
		t.Fatalf("events of api: %d %s", code, b)
	}
	code, b = get(t, srv.URL+api.PathEvents+"?program=nope")
	if code != http.StatusOK || !strings.Contains(string(b), `"events":[]`) {
		t.Fatalf("events of nope: %d %s", code, b)
	}
	for _, q := range []string{"?program=", "?program=A", "?program=a&program=b"} {
		if code, b := get(t, srv.URL+api.PathEvents+q); code != http.StatusBadRequest {
			t.Errorf("%s: %d %s", q, code, b)
		}
	}

	// A stream filtered to one program carries its events only.
	req, _ := http.NewRequest(http.MethodGet, srv.URL+api.PathEvents+"?follow=true&program=api", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	line := func() api.Event {
		t.Helper()
		for sc.Scan() {
			if len(sc.Bytes()) == 0 {
				continue
			}
			var e api.Event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				t.Fatal(err)
			}
			return e
		}
		t.Fatalf("stream ended: %v", sc.Err())
		return api.Event{}
	}
	if e := line(); e.Program == nil || *e.Program != "api" {
		t.Fatalf("backlog event of another program: %+v", e)
	}
	for f.subscribers() == 0 {
		time.Sleep(time.Millisecond)
	}
	f.publish(supervisor.Event{Time: time.Now(), Program: "web", PID: 7, Reason: supervisor.ReasonSignal})
	f.publish(supervisor.Event{Time: time.Now(), Program: "api", PID: 8, Reason: supervisor.ReasonSignal})
	if e := line(); e.PID != 8 {
		t.Fatalf("stream carried %+v, want api's pid 8", e)
	}
}
