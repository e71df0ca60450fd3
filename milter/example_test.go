package milter_test

import (
	"bytes"
	"fmt"
	"net"
	"time"

	gomilter "github.com/d--j/go-milter"

	"github.com/danemilter/danemilter/dane"
	"github.com/danemilter/danemilter/milter"
	"github.com/danemilter/danemilter/policy"

	"github.com/danemilter/danemilter/milter/miltertest"
)

// Example runs the milter on a loopback port with the fake resolver (which
// proves for every name that no record exists) and plays an MTA: a message to
// a recipient without a key passes unchanged under level dane, and one to a
// recipient whose level is encrypt is refused at RCPT TO.
func Example() {
	levels := policy.NewTable(policy.LevelDane)
	_ = levels.Set("bank.example", policy.LevelEncrypt)
	srv, err := milter.NewServer(milter.Options{Resolver: &dane.Fake{}, Levels: levels, RcptWait: time.Second})
	if err != nil {
		panic(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go srv.Serve(ln)
	defer srv.Close()

	msg := []byte("From: a@local.example\r\nTo: b@partner.example\r\nSubject: hi\r\n\r\nHello\r\n")
	res, err := miltertest.Simulate("tcp", ln.Addr().String(), "Q1", "a@local.example", []string{"b@partner.example"}, msg)
	if err != nil {
		panic(err)
	}
	fmt.Println("partner:", res.Final.Type == gomilter.ActionAccept, bytes.Equal(res.Message, msg))

	res, err = miltertest.Simulate("tcp", ln.Addr().String(), "Q2", "a@local.example", []string{"c@bank.example"}, msg)
	if err != nil {
		panic(err)
	}
	fmt.Println("bank:", res.Rcpts[0].SMTPReply)
	// Output:
	// partner: true true
	// bank: 550 5.7.5 encryption required but recipient has no usable key
}
